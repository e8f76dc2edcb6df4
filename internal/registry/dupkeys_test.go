package registry

import (
	"errors"
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
