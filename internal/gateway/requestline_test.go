package gateway

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestAmbiguousPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/": false, "/a": false, "/a/": false, "/a/b.c": false, "/a%20b": false, "/%41": false, "/a..b": false, "/.well-known/x": false,
		"": true, "a": true, "*": true, "//": true, "/a//b": true, "/./a": true, "/a/.": true, "/a/..": true, "/a/../b": true,
		"/a;b": true, "/a\\b": true, "/a%2fb": true, "/a%2Fb": true, "/a%5cb": true, "/%2e": true, "/%2E%2E/x": true,
		"/a%3bb": true, "/a%25": true, "/a%": true, "/a%4": true, "/a%zz": true, "/a%00": true, "/a\x7fb": true, "/a\tb": true,
	} {
		if got := AmbiguousPath([]byte(p)); got != want {
			t.Errorf("AmbiguousPath(%q) = %v; want %v", p, got, want)
		}
	}
}

// FuzzAmbiguousPath: a path the gateway accepts means the same decoded as
// sent: decoding it adds no '/', '\', ';' or control byte, and the decoded
// path is already clean (no empty, "." or ".." segment).
func FuzzAmbiguousPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "/a%20b/", "/v1/expensive/%2e%2e/x", "/v1;/x", "/a//b", "/%2F", "/a\\b", "/%41%42"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if AmbiguousPath([]byte(p)) {
			return
		}
		dec, err := url.PathUnescape(p)
		if err != nil {
			t.Fatalf("accepted %q, which does not decode: %v", p, err)
		}
		if strings.Count(dec, "/") != strings.Count(p, "/") || strings.ContainsAny(dec, "\\;") {
			t.Fatalf("accepted %q, which decodes to %q", p, dec)
		}
		for _, c := range []byte(dec) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("accepted %q, which decodes to a control byte: %q", p, dec)
			}
		}
		clean := path.Clean(dec)
		if strings.HasSuffix(dec, "/") && clean != "/" {
			clean += "/"
		}
		if clean != dec {
			t.Fatalf("accepted %q, which decodes to %q, not clean (%q)", p, dec, clean)
		}
	})
}
