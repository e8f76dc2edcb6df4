package tenants_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/tenants"
)

func TestBasicKey(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		name, auth, want string
		ok               bool
	}{
		{"password is the key", "Basic " + b64("api:k1"), "k1", true},
		{"user when the password is empty", "Basic " + b64("k1:"), "k1", true},
		{"scheme in any case, spaces around", "basic   " + b64("u:k1") + " ", "k1", true},
		{"unpadded", "Basic " + base64.RawStdEncoding.EncodeToString([]byte("u:k12")), "k12", true},
		{"colon in the password", "Basic " + b64("u:a:b"), "a:b", true},
		{"empty user and password", "Basic " + b64(":"), "", true},
		{"another scheme", "Bearer k1", "", true},
		{"no Authorization", "", "", true},
		{"bad base64", "Basic !!!!", "", false},
		{"wrong padding", "Basic " + strings.TrimRight(b64("u:k1"), "=") + "=", "", false},
		{"no colon", "Basic " + b64("k1"), "", false},
		{"nothing after the scheme", "Basic ", "", false},
		{"too long", "Basic " + b64("u:"+strings.Repeat("k", tenants.KeyBufLen)), "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf [tenants.KeyBufLen]byte
			key, _, ok := tenants.BasicKey(buf[:], []byte(tc.auth))
			if string(key) != tc.want || ok != tc.ok {
				t.Fatalf("BasicKey(%q): got %q, %v; want %q, %v", tc.auth, key, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestQueryKey(t *testing.T) {
	cases := []struct {
		query, want string
		n           int
		ok          bool
	}{
		{"", "", 0, true},
		{"a=1&b=2", "", 0, true},
		{"user_key=k1", "k1", 1, true},
		{"a=1&user_key=k1&b=2", "k1", 1, true},
		{"user%5Fkey=k%201+2", "k 1 2", 1, true},
		{"user_key=%zz%4", "%zz%4", 1, true},
		{"user_key", "", 1, true},
		{"user_key=&user_key=k1", "", 2, true},
		{"user_key=a&user%5fkey=b", "a", 2, true},
		{"user_keys=k1&xuser_key=k2&user_ke=k3", "", 0, true},
		{"user_key=" + strings.Repeat("%41", tenants.KeyBufLen+1), "", 1, false},
		{"user_key=" + strings.Repeat("A", 2*tenants.KeyBufLen), strings.Repeat("A", 2*tenants.KeyBufLen), 1, true},
	}
	for _, tc := range cases {
		var buf [tenants.KeyBufLen]byte
		key, n, ok := tenants.QueryKey(buf[:], []byte(tc.query), "user_key")
		if string(key) != tc.want || n != tc.n || ok != tc.ok {
			t.Errorf("QueryKey(%.40q): got %.20q, %d, %v; want %.20q, %d, %v", tc.query, key, n, ok, tc.want, tc.n, tc.ok)
		}
	}
}

func TestStripQueryParam(t *testing.T) {
	cases := []struct{ query, want string }{
		{"user_key=k1", ""},
		{"a=1&user_key=k1&b=%2F+x", "a=1&b=%2F+x"},
		{"user_key=k1&b=2", "b=2"},
		{"b=2&user%5Fkey=k1", "b=2"},
		{"a&&b=&c=%zz", "a&&b=&c=%zz"},
		{"user_key=a&x=1&user_key=b", "x=1"},
		{"user_keys=1", "user_keys=1"},
	}
	for _, tc := range cases {
		if got := string(tenants.StripQueryParam([]byte(tc.query), "user_key")); got != tc.want {
			t.Errorf("StripQueryParam(%q): got %q; want %q", tc.query, got, tc.want)
		}
	}
}

// FuzzQueryKey: QueryKey reads a query as fasthttp's Args do (the same
// count, the same first value), and after StripQueryParam the parameter
// is gone while the rest is unchanged when it was not there.
func FuzzQueryKey(f *testing.F) {
	for _, s := range []string{"user_key=k", "a=1&user_key=%41&user_key", "user%5Fkey=+&b", "%", "user_key=%4", "&&=", "&", "user_key=%+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		var buf [tenants.KeyBufLen]byte
		key, n, ok := tenants.QueryKey(buf[:], []byte(query), "user_key")
		var args fasthttp.Args
		args.Parse(query)
		all := args.PeekMulti("user_key")
		if n != len(all) {
			t.Fatalf("QueryKey(%q): %d occurrences; fasthttp reads %d", query, n, len(all))
		}
		if n > 0 && ok && !bytes.Equal(key, all[0]) {
			t.Fatalf("QueryKey(%q) = %q; fasthttp reads %q", query, key, all[0])
		}
		stripped := tenants.StripQueryParam([]byte(query), "user_key")
		if _, n2, _ := tenants.QueryKey(buf[:], stripped, "user_key"); n2 != 0 {
			t.Fatalf("StripQueryParam(%q) = %q; the parameter is still there", query, stripped)
		}
		if n == 0 && string(stripped) != query {
			t.Fatalf("StripQueryParam(%q) = %q; want it unchanged", query, stripped)
		}
	})
}

// FuzzBasicKey: BasicKey never panics, and a key it finds is a part of
// what the credentials decode to.
func FuzzBasicKey(f *testing.F) {
	for _, s := range []string{"Basic dXNlcjpwYXNz", "Basic Og==", "Basic ", "basic x", "Bearer k", "Basic\tdXNlcjpwYXNz"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, auth []byte) {
		var buf [64]byte
		key, _, ok := tenants.BasicKey(buf[:], auth)
		if !ok || len(key) == 0 {
			return
		}
		dec, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(string(auth[6:])), "="))
		if err != nil || !bytes.Contains(dec, key) {
			t.Fatalf("BasicKey(%q) = %q; not in the credentials %q (%v)", auth, key, dec, err)
		}
	})
}
