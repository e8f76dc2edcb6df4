package limiter

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// MarshalJSON writes the rule with its window as a duration string
// ("1m0s"), as the config file spells it.
func (r Rule) MarshalJSON() ([]byte, error) {
	type plain Rule
	return json.Marshal(struct {
		plain
		Window string `json:"window"`
	}{plain(r), r.Window.String()})
}

// UnmarshalJSON reads a rule with its window as a duration string ("1s",
// "1m") or a count of nanoseconds. Unknown fields are refused.
func (r *Rule) UnmarshalJSON(b []byte) error {
	type plain Rule
	var v struct {
		*plain
		Window json.RawMessage `json:"window"`
	}
	v.plain = (*plain)(r)
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if k, ok := unknownKey(b, ruleKeys); ok {
		return fmt.Errorf("json: unknown field %q", k)
	}
	r.Window = 0
	if len(v.Window) == 0 || string(v.Window) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(v.Window, &s) == nil {
		w, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("window: %q is not a duration (1s, 1m, 1h)", s)
		}
		r.Window = w
		return nil
	}
	var ns int64
	if err := json.Unmarshal(v.Window, &ns); err != nil {
		return fmt.Errorf("window: want a duration string (1s, 1m, 1h)")
	}
	r.Window = time.Duration(ns)
	return nil
}

// ruleKeys are the JSON names of Rule's fields.
var ruleKeys = func() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[Rule]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		keys[name] = true
	}
	return keys
}()

// unknownKey returns the first key of the JSON object b (valid JSON, as
// json.Unmarshal found it) that known lacks, and whether there is one. A key
// with an escape is unknown. It is what a Decoder's DisallowUnknownFields
// does, without the Decoder's cost: a registry load decodes 100 000 rules.
func unknownKey(b []byte, known map[string]bool) (string, bool) {
	depth, expectKey := 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '{', '[':
			depth++
			expectKey = c == '{' && depth == 1
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			end := i + 1
			for end < len(b) && b[end] != '"' {
				if b[end] == '\\' {
					end++
				}
				end++
			}
			if expectKey {
				key := string(b[i+1 : end])
				if strings.ContainsRune(key, '\\') || !known[key] {
					return key, true
				}
				expectKey = false
			}
			i = end
		}
	}
	return "", false
}
