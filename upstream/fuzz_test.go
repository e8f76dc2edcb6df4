package upstream_test

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/upstream"
)

// FuzzRoute: Route picks, among the routes whose host (case-insensitive,
// port and one trailing dot ignored) and prefix match, one with a host over one without, then
// the longest prefix; none matching, nil. The oracle scores every route.
func FuzzRoute(f *testing.F) {
	routes := []upstream.RouteSpec{
		{Host: "api.test", PathPrefix: "/v1", Upstream: "api-v1"},
		{Host: "api.test", PathPrefix: "/", Upstream: "api"},
		{PathPrefix: "/v1/admin", Upstream: "admin"},
		{PathPrefix: "/static/", Upstream: "static"},
		{PathPrefix: "/Docs", CaseInsensitive: true, Upstream: "docs"},
	}
	specs := map[string]upstream.Spec{}
	for _, r := range routes {
		specs[r.Upstream] = spec("http://127.0.0.1:1")
	}
	p, err := upstream.New(specs, routes, quiet)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][2]string{{"api.test", "/v1/x"}, {"API.test:8080", "/"}, {"other", "/v1/admin/x"}, {"other", "/static/a"}, {"other", "/"}, {"[::1]:80", "/v1"}, {"x", "/DOCS/a"}, {"x", "/docs"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, host, path string) {
		got := p.Route([]byte(host), []byte(path))
		bare := host
		if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
			bare = host[:i]
		}
		bare = strings.TrimSuffix(bare, ".") // fully qualified, the same name
		best, bestScore := "", -1
		for _, r := range routes {
			prefixed := strings.HasPrefix(path, r.PathPrefix)
			if r.CaseInsensitive {
				prefixed = len(path) >= len(r.PathPrefix) && strings.EqualFold(path[:len(r.PathPrefix)], r.PathPrefix)
			}
			if (r.Host != "" && !strings.EqualFold(r.Host, bare)) || !prefixed {
				continue
			}
			score := len(r.PathPrefix)
			if r.Host != "" {
				score += 1 << 20
			}
			if score > bestScore {
				best, bestScore = r.Upstream, score
			}
		}
		switch {
		case best == "" && got != nil:
			t.Fatalf("Route(%q, %q) = %s; want none", host, path, got.Name)
		case best != "" && (got == nil || got.Name != best):
			t.Fatalf("Route(%q, %q) = %v; want %s", host, path, got, best)
		}
	})
}

// FuzzForwardedHeaders: whatever header block a client sends, after the
// gateway's stripping and setting the upstream request has no hop-by-hop
// field, none that Connection named, no Forwarded at the edge, and exactly
// one of each header the gateway sets.
func FuzzForwardedHeaders(f *testing.F) {
	for _, s := range []string{
		"X-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\n",
		"Connection: X-Forwarded-Host, keep-alive\r\nX-Forwarded-Host: evil\r\n",
		"Forwarded: for=1.2.3.4\r\nX-Request-Id: a\r\nX-Request-Id: b\r\n",
		"Te: trailers\r\nTrailer: X-Forwarded-Proto\r\nUpgrade: websocket\r\n",
	} {
		f.Add(s)
	}
	ids := upstream.NewIDs("fuzz")
	f.Fuzz(func(t *testing.T, block string) {
		var h fasthttp.RequestHeader
		if h.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: gw\r\n"+block+"\r\n"))) != nil {
			return // not a request fasthttp would have served
		}
		named := map[string]bool{}
		for _, v := range h.PeekAll(fasthttp.HeaderConnection) {
			for _, tok := range bytes.Split(v, []byte(",")) {
				if tok = bytes.TrimSpace(tok); len(tok) > 0 {
					named[strings.ToLower(string(tok))] = true
				}
			}
		}
		upstream.StripRequestHopByHop(&h)
		ids.EnsureRequestID(&h)
		upstream.SetForwarded(&h, upstream.Forwarded{ClientIP: net.IPv4(192, 0, 2, 7)})
		count := map[string]int{}
		for k := range h.All() {
			count[strings.ToLower(string(k))]++
		}
		for _, hop := range []string{"connection", "proxy-connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "forwarded"} {
			if count[hop] > 0 {
				t.Fatalf("%s reached the upstream:\n%s", hop, h.String())
			}
		}
		for name := range named {
			if count[name] > 0 && !owned(name) {
				t.Fatalf("%s, named in Connection, reached the upstream:\n%s", name, h.String())
			}
		}
		for _, own := range []string{"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"} {
			if count[own] != 1 {
				t.Fatalf("%d of %s; want exactly the gateway's one:\n%s", count[own], own, h.String())
			}
		}
		if xff := string(h.Peek("X-Forwarded-For")); xff != "192.0.2.7" {
			t.Fatalf("X-Forwarded-For %q at the edge; want the peer alone", xff)
		}
	})
}

// owned are the headers the gateway sets after stripping.
func owned(name string) bool {
	switch name {
	case "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id", "host":
		return true
	}
	return false
}

// FuzzClientIP: the client of a request is always an IP address: from an
// untrusted peer the peer itself, from a trusted one a hop that is not a
// trusted proxy, or when there is none, the leftmost hop or the peer.
func FuzzClientIP(f *testing.F) {
	trusted, err := upstream.ParseTrusted([]string{"10.0.0.0/8"})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][2]string{{"10.0.0.1", "1.2.3.4"}, {"10.0.0.1", "1.2.3.4, 10.0.0.2"}, {"192.0.2.1", "1.2.3.4"}, {"10.0.0.1", " , ,x"}, {"10.0.0.1", "fe80::1%eth0"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, peer, xff string) {
		ip := net.ParseIP(peer)
		if ip == nil {
			return
		}
		var h fasthttp.RequestHeader
		h.Set("X-Forwarded-For", xff)
		a := trusted.ClientIP(&h, ip)
		got := a.String()
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("ClientIP(peer %s, X-Forwarded-For %q) = %q: not an unmapped IP address without a zone", peer, xff, got)
		}
		if !trusted.Peer(ip) && got != netip.MustParseAddr(ip.String()).Unmap().String() {
			t.Fatalf("untrusted peer %s, X-Forwarded-For %q: got %q; want the peer", peer, xff, got)
		}
	})
}
