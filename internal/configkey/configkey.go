// Package configkey is what every part's config validation shares: the
// error that names the config key at fault, and the rule for names (tenant
// IDs, plan, rule and upstream names, the key prefix). config attributes
// each such error to the layer that set the key.
package configkey

import "fmt"

// Error is a problem with one config key, named the way the config file
// spells it: upstreams.demo.targets[0].
type Error struct {
	Path string
	Msg  string
}

// Error is "path: message".
func (e *Error) Error() string { return e.Path + ": " + e.Msg }

// KeyPath is the key at fault.
func (e *Error) KeyPath() string { return e.Path }

// Errorf returns the *Error of path with a formatted message.
func Errorf(path, format string, args ...any) *Error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Errors collects the problems of one validation.
type Errors []error

// Add records a problem with path.
func (es *Errors) Add(path, format string, args ...any) {
	*es = append(*es, Errorf(path, format, args...))
}

// MaxName is the longest name.
const MaxName = 64

// ValidName reports whether s is 1–MaxName of [A-Za-z0-9_.-]: safe in a
// Redis key, a metric label and a header item without escaping.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// BadName is the message for a name ValidName refuses.
func BadName(name string) string {
	return fmt.Sprintf("got %q; want 1-%d characters of A-Z a-z 0-9 _ . -", name, MaxName)
}
