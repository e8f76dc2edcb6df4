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
	for _, s := range [][2]string{{"k", ""}, {"", "Bearer k"}, {"", "bearer  k "}, {"", "Basic dXNlcg=="}, {"", "Bearer"}, {"", "Bearer "}, {"x", "Bearer y"}} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, header, auth []byte) {
		key := tenants.KeyFrom(header, auth)
		switch {
		case len(header) > 0:
			if !bytes.Equal(key, header) {
				t.Fatalf("KeyFrom(%q, %q) = %q; want the key header", header, auth, key)
			}
		case len(key) == 0:
			if len(auth) > len("Bearer ") && bytes.EqualFold(auth[:7], []byte("Bearer ")) && len(bytes.TrimSpace(auth[7:])) > 0 {
				t.Fatalf("KeyFrom(nil, %q) = nothing; want the bearer token", auth)
			}
		default:
			if !bytes.EqualFold(auth[:7], []byte("Bearer ")) || !bytes.Equal(key, bytes.TrimSpace(auth[7:])) {
				t.Fatalf("KeyFrom(nil, %q) = %q; want the trimmed bearer token or nothing", auth, key)
			}
		}
	})
}
