package config

import "strings"

// Error is one configuration problem.
type Error struct {
	// Key is the config key, spelled as in the file (tenant_list[0].plan).
	Key string
	// Source is where the value came from: the file, "env L1GW_…",
	// "--set …" or "defaults".
	Source string
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string { return e.Key + ": " + e.Msg + " (from " + e.Source + ")" }

// Errors is every problem Load found, one per line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// covers reports whether es has an error about key or a key above it.
func (es Errors) covers(key string) bool {
	for _, e := range es {
		if key == e.Key || strings.HasPrefix(key, e.Key+".") || strings.HasPrefix(key, e.Key+"[") {
			return true
		}
	}
	return false
}
