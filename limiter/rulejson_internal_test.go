package limiter

import (
	"testing"
)

// FuzzFlatRule: whatever the fast path of a rule's JSON accepts, the
// general path (encoding/json) reads the same.
func FuzzFlatRule(f *testing.F) {
	for _, s := range []string{`{"name":"a","limit":1,"window":"1s"}`, ` { "name" : "per_minute" , "limit" : 60 , "window" : 60000000000 , "cost" : 2 , "mode" : "shadow" } `,
		`{}`, `{"name":"a\u0062"}`, `{"limit":1.5}`, `{"window":"soon"}`, `{"Name":"a"}`, `{"name":"a"}x`, `{"limit":-0}`, `{"limit":99999999999999999999}`,
		`{"name":"q","limit":1000000,"algorithm":"fixed","period":"month","anchor":15,"timezone":"Europe/Berlin"}`, `{"anchor":"15"}`, `{"algorithm":1}`,
		`{"name":"w","limit":10,"window":"1m","algorithm":"sliding_window"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := parseFlatRule([]byte(s))
		if !ok {
			return
		}
		var slow Rule
		if err := slow.unmarshalJSON([]byte(s)); err != nil {
			t.Fatalf("%s: the fast path read %+v; the general path refuses it: %v", s, fast, err)
		}
		if fast != slow {
			t.Fatalf("%s: the fast path read %+v; the general path %+v", s, fast, slow)
		}
	})
}
