package upstream_test

import (
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/upstream"
)

func TestTrustedClientIP(t *testing.T) {
	trusted, err := upstream.ParseTrusted([]string{"10.0.0.0/8", " 192.0.2.1 "})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		peer string
		xff  []string // copies of X-Forwarded-For, in order
		want string
	}{
		{"edge: the peer, whatever it says", "198.51.100.7", []string{"203.0.113.9"}, "198.51.100.7"},
		{"proxy: the hop it appended", "10.1.2.3", []string{"203.0.113.9"}, "203.0.113.9"},
		{"proxy: a spoofed leftmost entry does not count", "10.1.2.3", []string{"1.1.1.1, 2.2.2.2, 203.0.113.9"}, "203.0.113.9"},
		{"two proxies: skip the trusted hop", "10.1.2.3", []string{"1.1.1.1, 203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"every copy, the last first", "192.0.2.1", []string{"1.1.1.1", "203.0.113.9, 10.0.0.1"}, "203.0.113.9"},
		{"every copy: a later empty one", "192.0.2.1", []string{"203.0.113.9", ""}, "203.0.113.9"},
		{"garbage where the proxy appends: the peer", "10.1.2.3", []string{"203.0.113.9, not-an-ip"}, "10.1.2.3"},
		{"a zone: the peer", "10.1.2.3", []string{"fe80::1%eth0"}, "10.1.2.3"},
		{"all trusted: the leftmost", "10.1.2.3", []string{"10.0.0.9, 10.0.0.8"}, "10.0.0.9"},
		{"no header: the peer", "10.1.2.3", nil, "10.1.2.3"},
		{"IPv6 client", "10.1.2.3", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv4-mapped peer is trusted", "::ffff:10.1.2.3", []string{"203.0.113.9"}, "203.0.113.9"},
		{"a mapped hop: its IPv4 form", "10.1.2.3", []string{"::FFFF:203.0.113.9"}, "203.0.113.9"},
		{"IPv6 in any spelling: one form", "10.1.2.3", []string{"2001:DB8:0:0::7"}, "2001:db8::7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			for _, v := range tc.xff {
				h.Add("X-Forwarded-For", v)
			}
			if got := trusted.ClientIP(&h, net.ParseIP(tc.peer)).String(); got != tc.want {
				t.Fatalf("got %q; want %q", got, tc.want)
			}
		})
	}
	var none *upstream.Trusted
	var h fasthttp.RequestHeader
	h.Set("X-Forwarded-For", "203.0.113.9")
	if got := none.ClientIP(&h, net.ParseIP("10.1.2.3")).String(); got != "10.1.2.3" {
		t.Errorf("nil Trusted: got %q; want the peer", got)
	}
}

func TestParseTrustedNamesTheEntry(t *testing.T) {
	_, err := upstream.ParseTrusted([]string{"10.0.0.0/8", "10.0.0.0/33"})
	if err == nil || !strings.Contains(err.Error(), "entry 1") {
		t.Fatalf("got %v; want an error naming entry 1", err)
	}
}
