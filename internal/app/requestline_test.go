package app

import (
	"strings"
	"testing"

	"github.com/l1gw/l1gw/internal/testkit"
)

// TestRequestLineRefusals: a version, method, target or path the gateway
// does not forward is refused with a clear status, and never reaches the
// upstream; a 505 closes the connection, a 405 names what is allowed.
func TestRequestLineRefusals(t *testing.T) {
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL))
	const key = "\r\nHost: gw\r\nX-API-Key: bulk-key\r\n\r\n"
	cases := []struct {
		line   string
		status int
	}{
		{"GET /v HTTP/2.0", 505},
		{"GET /v HTTP/1.2", 505},
		{"TRACE /v HTTP/1.1", 405},
		{"get /v HTTP/1.1", 501},
		{"Get /v HTTP/1.1", 501},
		{"PURGE /v HTTP/1.1", 501},
		{"GET http://user:pass@gw/v HTTP/1.1", 400},
		{"GET /v1/expensive/%2e%2e/x HTTP/1.1", 400},
		{"GET /v1/expensive/%2E%2E/x HTTP/1.1", 400},
		{"GET /v1/expensive/../x HTTP/1.1", 400},
		{"GET /v1/./expensive HTTP/1.1", 400},
		{"GET /v1;/expensive HTTP/1.1", 400},
		{"GET /v1/expensive;x=1 HTTP/1.1", 400},
		{"GET /v1%2fexpensive HTTP/1.1", 400},
		{"GET /v1%5cexpensive HTTP/1.1", 400},
		{"GET /v1\\expensive HTTP/1.1", 400},
		{"GET /v1//expensive HTTP/1.1", 400},
		{"GET /v1/%25 HTTP/1.1", 400},
		{"GET /v1/%zz HTTP/1.1", 400},
		{"GET /v1/%0a HTTP/1.1", 400},
		{"GET /v1/% HTTP/1.1", 400},
		{"GET /public#/../admin HTTP/1.1", 400},
		// An absolute-form target's host comes before Host (RFC 9112
		// §3.2.2): an empty one would route past Host's routes.
		{"GET http:///v HTTP/1.1", 400},
		{"GET http://:80/v HTTP/1.1", 400},
	}
	for _, tc := range cases {
		t.Run(tc.line, func(t *testing.T) {
			c := dial(t, gw.proxy)
			c.send(tc.line + key)
			resp := c.response()
			if resp.StatusCode() != tc.status {
				t.Fatalf("got %d; want %d (%s)", resp.StatusCode(), tc.status, resp.Body())
			}
			if tc.status == 405 && string(resp.Header.Peek("Allow")) == "" {
				t.Error("405 without Allow")
			}
			if tc.status == 505 && !c.closed() {
				t.Error("connection open after a 505; want it closed")
			}
		})
	}
	if n := up.Requests(); n != 0 {
		t.Fatalf("upstream read %d requests; want none:\n%s", n, up.Raw())
	}
	for _, line := range []string{"GET /v1/expensive HTTP/1.1", "GET /a%20b/ HTTP/1.1", "GET /a%2Db HTTP/1.0", "OPTIONS /x HTTP/1.1", "PATCH /x HTTP/1.1", "GET http://gw/x HTTP/1.1"} {
		c := dial(t, gw.proxy)
		c.send(line + key)
		if resp := c.response(); resp.StatusCode() != 200 {
			t.Errorf("%s: got %d; want 200", line, resp.StatusCode())
		}
	}
	if n := up.Requests(); n != 6 {
		t.Errorf("upstream read %d requests; want the 6 plain ones", n)
	}
	// HTTP/1.0 allows no Host, but the gateway cannot route or forward
	// it: a 400 saying so, not a 502.
	c := dial(t, gw.proxy)
	c.send("GET /x HTTP/1.0\r\nX-API-Key: bulk-key\r\n\r\n")
	if resp := c.response(); resp.StatusCode() != 400 || !strings.Contains(string(resp.Body()), "names no host") {
		t.Errorf("HTTP/1.0 without Host: got %d (%s); want 400 naming the missing host", resp.StatusCode(), resp.Body())
	}
}

// TestForwardedHostIsTheRoutedHost: an absolute-form target's host, which
// routes the request, is the one the upstream is told in Host and
// X-Forwarded-Host, not the Host header the target overrides.
func TestForwardedHostIsTheRoutedHost(t *testing.T) {
	raw := admittedThrough(t, "GET http://other.example/x HTTP/1.1\r\nHost: api.example.com\r\nX-API-Key: bulk-key\r\n\r\n")
	for _, name := range []string{"Host", "X-Forwarded-Host"} {
		if got := headerLines(raw, name); len(got) != 1 || got[0] != "other.example" {
			t.Errorf("upstream got %s %q; want exactly other.example", name, got)
		}
	}
}

// TestRouteLimitNotBypassedThroughThePath: acme's POST /v1/expensive is 1
// per minute; no spelling of the path that the upstream would read as the
// same resource gets a second one through.
func TestRouteLimitNotBypassedThroughThePath(t *testing.T) {
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL))
	if resp := call(t, gw.proxy, "POST", "/v1/expensive", "X-API-Key", "acme-key"); resp.StatusCode() != 200 {
		t.Fatalf("first POST /v1/expensive: %d; want 200", resp.StatusCode())
	}
	for _, target := range []string{
		"/v1/expensive", "/v1/expensive/", "/v1/x/%2e%2e/expensive", "/v1;/expensive", "/v1//expensive", "/v1/./expensive",
		"/v1%2fexpensive",
	} {
		c := dial(t, gw.proxy)
		c.send("POST " + target + " HTTP/1.1\r\nHost: gw\r\nX-API-Key: acme-key\r\nContent-Length: 0\r\n\r\n")
		if resp := c.response(); resp.StatusCode() == 200 {
			t.Errorf("POST %s: 200; want it refused or limited", target)
		}
	}
	if got := strings.Count(up.Raw(), "expensive"); got != 1 {
		t.Errorf("upstream got %d requests for expensive; want 1:\n%s", got, up.Raw())
	}
}
