package tenants_test

import (
	"bytes"
	"testing"

	"github.com/l1gw/l1gw/tenants"
)

// FuzzKeyFrom: the key comes from the key header when it has one, else
// from a case-insensitive "Bearer " Authorization, trimmed; it is always
// a part of what was sent, and nothing else is ever a key.
func FuzzKeyFrom(f *testing.F) {
	for _, s := range [][2]string{{"k", ""}, {"", "Bearer k"}, {"", "bearer  k "}, {"", "Basic dXNlcg=="}, {"", "Bearer"}, {"", "Bearer "}, {"x", "Bearer y"},
		{"", "BeArer\t0"}, {"", "Bearer\t"}, {"", "Bearerk"}} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	// isBearer: the scheme, in any case, then a space or a tab.
	isBearer := func(auth []byte) bool {
		return len(auth) > 6 && bytes.EqualFold(auth[:6], []byte("Bearer")) && (auth[6] == ' ' || auth[6] == '\t')
	}
	f.Fuzz(func(t *testing.T, header, auth []byte) {
		key := tenants.KeyFrom(header, auth)
		switch {
		case len(header) > 0:
			if !bytes.Equal(key, header) {
				t.Fatalf("KeyFrom(%q, %q) = %q; want the key header", header, auth, key)
			}
		case len(key) == 0:
			if isBearer(auth) && len(bytes.TrimSpace(auth[6:])) > 0 {
				t.Fatalf("KeyFrom(nil, %q) = nothing; want the bearer token", auth)
			}
		default:
			if !isBearer(auth) || !bytes.Equal(key, bytes.TrimSpace(auth[6:])) {
				t.Fatalf("KeyFrom(nil, %q) = %q; want the trimmed bearer token or nothing", auth, key)
			}
		}
	})
}
