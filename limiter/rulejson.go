package limiter

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		return err
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
