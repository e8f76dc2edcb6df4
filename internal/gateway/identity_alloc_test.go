//go:build !race

package gateway

import (
	"testing"

	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/tenants"
)

// TestKeyPlacesDoNotAllocate: reading the key from the query (and
// stripping it) or from Basic credentials costs no heap allocation once
// warm, admitted or not; nor does refusing a request for its key.
func TestKeyPlacesDoNotAllocate(t *testing.T) {
	gw := newIdentityGateway(t, testkit.Serve(t, nil), tenants.Options{KeyQuery: "user_key", KeyBasicAuth: true, HideKey: true})
	cases := []struct {
		name    string
		uri     string
		headers []string
		want    int
	}{
		{"query, admitted and stripped", "/alloc?a=1&user_key=bulk-key&b=2", nil, 200},
		{"encoded query, admitted", "/alloc?user_key=bulk%2Dkey", nil, 200},
		{"Basic, admitted", "/alloc", []string{basicAuth("api", "bulk-key")}, 200},
		{"same key twice, admitted", "/alloc?user_key=bulk-key", []string{"X-API-Key: bulk-key", basicAuth("bulk-key", "")}, 200},
		{"no key", "/alloc?a=1", nil, 401},
		{"unknown key in the query", "/alloc?user_key=nope", nil, 401},
		{"unknown key in Basic", "/alloc", []string{basicAuth("api", "nope")}, 401},
		{"malformed Basic", "/alloc", []string{"Authorization: Basic !!!!"}, 401},
		{"two keys", "/alloc?user_key=acme-key", []string{"X-API-Key: bulk-key"}, 400},
		{"a key and another tenant's", "/alloc", []string{"X-API-Key: bulk-key", "Authorization: Bearer acme-key"}, 400},
		{"the parameter twice", "/alloc?user_key=a&user_key=b", nil, 400},
		{"another scheme's words, passed", "/alloc", []string{"X-API-Key: bulk-key", "Authorization: Token a b c d e f g"}, 200},
		{"a key among another scheme's words", "/alloc", []string{"X-API-Key: bulk-key", "Authorization: Token x acme-key y"}, 400},
		{"a Bearer token before a comma, passed", "/alloc", []string{"X-API-Key: bulk-key", "Authorization: Bearer up-secret,x"}, 200},
		{"a key where Rails reads one", "/alloc", []string{"X-API-Key: bulk-key", `Authorization: Token token="acme-key"`}, 400},
		{"a key where Laravel reads one", "/alloc", []string{"X-API-Key: bulk-key", "Authorization: Bearer acme-key,x"}, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newIdentityRequest(tc.uri, tc.headers...)
			for range 10 {
				r.serve(gw.Serve)
			}
			var code int
			allocs := testing.AllocsPerRun(200, func() { code = r.serve(gw.Serve) })
			if code != tc.want {
				t.Fatalf("status %d (%s); want %d", code, r.ctx.Response.Body(), tc.want)
			}
			if allocs > 0 {
				t.Fatalf("%.1f allocations per request; want 0", allocs)
			}
		})
	}
}
