package config

import (
	"strconv"
	"strings"
)

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

// brokeReference reports whether e is a reference to a plan or an
// upstream that es already says failed to decode: such a plan or upstream
// is missing from the decoded config, so what names it is "unknown" only
// because of that error (L1GW_PLANS__FREE__CONCURRENCY=abc also gave
// `tenant_list[0].plan: unknown plan "free"`).
func (es Errors) brokeReference(e *Error) bool {
	for _, ref := range [...]struct{ msg, section string }{{"unknown plan ", "plans."}, {"unknown upstream ", "upstreams."}} {
		rest, ok := strings.CutPrefix(e.Msg, ref.msg)
		if !ok {
			continue
		}
		name, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return false
		}
		name, err = strconv.Unquote(name)
		return err == nil && es.under(ref.section+name)
	}
	return false
}

// under reports whether es has an error about key or a key below it.
func (es Errors) under(key string) bool {
	for _, e := range es {
		if e.Key == key || strings.HasPrefix(e.Key, key+".") || strings.HasPrefix(e.Key, key+"[") {
			return true
		}
	}
	return false
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
