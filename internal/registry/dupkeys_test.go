package registry

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/l1gw/l1gw/internal/configkey"
)

// TestDecodeStrictRefusesANameGivenTwice: a name given twice in one
// object, or in two cases (encoding/json fills one field with either, the
// last winning), is refused naming its path; names alike in different
// objects are not.
func TestDecodeStrictRefusesANameGivenTwice(t *testing.T) {
	type limit struct {
		Name  string `json:"name"`
		Limit int    `json:"limit"`
	}
	type body struct {
		Plan   string  `json:"plan"`
		Limits []limit `json:"limits"`
	}
	for _, tc := range []struct{ in, path string }{
		{`{"plan":"free","plan":"pro"}`, "plan"},
		{`{"plan":"free","PLAN":"pro"}`, "PLAN"},
		{`{"limits":[{"name":"a","limit":1},{"name":"b","limit":5,"limit":500000}]}`, "limits[1].limit"},
		{`{"limits":[{"name":"a","Limit":1,"limit":2}]}`, "limits[0].limit"},
		{"{\"limits\":[],\"limit\u017f\":[]}", "limit\u017f"}, // 'ſ' is 's' to encoding/json
	} {
		var v body
		err := DecodeStrict([]byte(tc.in), &v)
		var ce *configkey.Error
		if !errors.As(err, &ce) || ce.Path != tc.path {
			t.Errorf("%s: %v; want the duplicate at %s", tc.in, err, tc.path)
		}
	}
	var v body
	if err := DecodeStrict([]byte(`{"plan":"pro","limits":[{"name":"a","limit":1},{"name":"b","limit":2}]}`), &v); err != nil || v.Plan != "pro" || len(v.Limits) != 2 {
		t.Fatalf("names alike in two objects: %+v, %v; want decoded", v, err)
	}
}

// TestDecodeStrictRefusesDeepNesting: a body nested deeper than an admin
// body ever is, is refused at once, and the walk for names given twice
// costs time and memory in proportion to the body. Before, a 64 KiB body
// of nested arrays took 11 s and 1.6 GiB (every level held its path).
func TestDecodeStrictRefusesDeepNesting(t *testing.T) {
	for _, body := range []string{
		strings.Repeat("[", 32<<10) + strings.Repeat("]", 32<<10),
		strings.Repeat(`{"a":`, 13000) + "1" + strings.Repeat("}", 13000),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var v any
		err := DecodeStrict([]byte(body), &v)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "nested deeper than") {
			t.Errorf("%.10s… nested %d deep: %v; want refused as nested too deep", body, len(body)/2, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
			t.Errorf("%.10s…: %d bytes allocated; want well under 4 MiB for a 64 KiB body", body, n)
		}
	}
	var v struct {
		A []struct {
			B []int `json:"b"`
		} `json:"a"`
	}
	if err := DecodeStrict([]byte(`{"a":[{"b":[1,2]},{"b":[3]}]}`), &v); err != nil || len(v.A) != 2 {
		t.Fatalf("a body a few levels deep: %+v, %v; want decoded", v, err)
	}
	for _, tc := range []struct{ in, path string }{
		{strings.Repeat("[", 33) + strings.Repeat("]", 33), strings.Repeat("[0]", 32)},
		{`{"a":[1,2,` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `]}`, "a[2]" + strings.Repeat("[0]", 30)},
		{strings.Repeat(`{"k":`, 33) + "1" + strings.Repeat("}", 33), strings.TrimPrefix(strings.Repeat(".k", 32), ".")},
	} {
		var ce *configkey.Error
		if err := DecodeStrict([]byte(tc.in), new(any)); !errors.As(err, &ce) || ce.Path != tc.path {
			t.Errorf("%.20s…: %v; want too deep at %s", tc.in, err, tc.path)
		}
	}
	err := DecodeStrict([]byte(`{"a":[{"b":[1]},{"b":[2],"B":[3]}]}`), &v)
	var ce *configkey.Error
	if !errors.As(err, &ce) || ce.Path != "a[1].B" {
		t.Fatalf("a name twice in the second element: %v; want it named a[1].B", err)
	}
}
