package limiter

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
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
	if fast, ok := parseFlatRule(b); ok {
		*r = fast
		return nil
	}
	return r.unmarshalJSON(b)
}

// unmarshalJSON is UnmarshalJSON's general path, with encoding/json.
func (r *Rule) unmarshalJSON(b []byte) error {
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

// parseFlatRule reads the common shape of a rule without encoding/json: a
// flat object of known keys, strings without escapes, integers. Anything
// else (and any problem) is left to the general path, which says what is
// wrong. A registry load reads 100 000 rules.
func parseFlatRule(b []byte) (Rule, bool) {
	var r Rule
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return r, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return r, skipSpace(b, i+1) == len(b)
	}
	for {
		key, next, ok := flatString(b, i)
		if !ok {
			return r, false
		}
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return r, false
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return r, false
		}
		var str string
		var num int64
		isStr := b[i] == '"'
		if isStr {
			str, next, ok = flatString(b, i)
		} else {
			end := i
			for end < len(b) && (b[end] == '-' || b[end] >= '0' && b[end] <= '9') {
				end++
			}
			digits := b[i:end]
			if len(digits) > 0 && digits[0] == '-' {
				digits = digits[1:]
			}
			var err error
			num, err = strconv.ParseInt(string(b[i:end]), 10, 64)
			// JSON has no leading zeros (01) and no bare minus.
			next, ok = end, err == nil && len(digits) > 0 && (digits[0] != '0' || len(digits) == 1)
		}
		if !ok || !setFlat(&r, key, isStr, str, num) {
			return r, false
		}
		i = skipSpace(b, next)
		if i >= len(b) {
			return r, false
		}
		if b[i] == '}' {
			return r, skipSpace(b, i+1) == len(b)
		}
		if b[i] != ',' {
			return r, false
		}
		i = skipSpace(b, i+1)
	}
}

// setFlat sets one field of r; false for a key or a type it does not take
// (the general path then answers).
func setFlat(r *Rule, key string, isStr bool, str string, num int64) bool {
	switch {
	case key == "name" && isStr:
		r.Name = str
	case key == "mode" && isStr:
		r.Mode = str
	case key == "algorithm" && isStr:
		r.Algorithm = str
	case key == "period" && isStr:
		r.Period = str
	case key == "timezone" && isStr:
		r.Timezone = str
	case key == "anchor" && !isStr:
		r.Anchor = int(num)
	case key == "limit" && !isStr:
		r.Limit = num
	case key == "cost" && !isStr:
		r.Cost = num
	case key == "window" && isStr:
		w, err := time.ParseDuration(str)
		if err != nil {
			return false
		}
		r.Window = w
	case key == "window":
		r.Window = time.Duration(num)
	default:
		return false
	}
	return true
}

// flatString reads a JSON string without escapes at b[i]; it returns the
// string and the index after it.
func flatString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return string(b[i+1 : j]), j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80: // escapes, controls, non-ASCII: the general path
			return "", i, false
		}
	}
	return "", i, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
