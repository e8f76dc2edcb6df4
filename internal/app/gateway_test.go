package app

import (
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
)

// TestRequestPath: each subtest has a gateway and an upstream of its
// own, so each stands alone and in any order.
func TestRequestPath(t *testing.T) {
	fresh := func(t *testing.T) (*running, *testkit.Upstream) {
		up, seen := startUpstream(t)
		return startApp(t, loadConfig(t, up)), seen
	}

	t.Run("admitted request reaches the upstream with every header", func(t *testing.T) {
		gw, seen := fresh(t)
		resp := call(t, gw.proxy, "GET", "/hello?x=1", "X-API-Key", "acme-key", "X-L1gw-Tenant", "spoofed",
			"Connection", "X-Secret", "X-Secret", "s", "X-Request-ID", "client-req-1")
		if resp.StatusCode() != 200 || string(resp.Body()) != "upstream ok" {
			t.Fatalf("got %d %q; want 200 from the upstream", resp.StatusCode(), resp.Body())
		}
		want := map[string]string{
			"X-RateLimit-Status": "ok", "X-RateLimit-Limit": "3", "X-RateLimit-Remaining": "2", "X-RateLimit-Reset": "60",
			"RateLimit-Policy": `"per_minute";q=3;w=60, "per_hour";q=100;w=3600`,
			"RateLimit":        `"per_minute";r=2;t=60, "per_hour";r=99;t=3600`,
			"X-Request-ID":     "client-req-1", "Retry-After": "", "X-Hop": "",
		}
		for k, v := range want {
			if got := string(resp.Header.Peek(k)); got != v {
				t.Errorf("response %s: got %q; want %q", k, got, v)
			}
		}
		r := seen.Last()
		upWant := map[string]string{
			"X-API-Key": "", "X-Secret": "", "X-L1gw-Tenant": "acme", "X-Forwarded-For": "127.0.0.1",
			"X-Forwarded-Proto": "http", "X-Request-ID": "client-req-1",
		}
		for k, v := range upWant {
			if got := string(r.Header.Peek(k)); got != v {
				t.Errorf("upstream saw %s: got %q; want %q", k, got, v)
			}
		}
		if got := string(r.RequestURI()); got != "/hello?x=1" {
			t.Errorf("upstream saw URI %q; want /hello?x=1", got)
		}
	})

	t.Run("bearer key works and is hidden from the upstream", func(t *testing.T) {
		gw, seen := fresh(t)
		resp := call(t, gw.proxy, "GET", "/b", "Authorization", "Bearer acme-key")
		if resp.StatusCode() != 200 {
			t.Fatalf("got %d; want 200", resp.StatusCode())
		}
		if got := string(seen.Last().Header.Peek("Authorization")); got != "" {
			t.Fatalf("upstream saw Authorization %q; want it removed", got)
		}
	})

	t.Run("over the limit is 429 with Retry-After and a problem body", func(t *testing.T) {
		gw, seen := fresh(t)
		for i := range 2 {
			if resp := call(t, gw.proxy, "GET", "/c", "X-API-Key", "acme-key"); resp.StatusCode() != 200 {
				t.Fatalf("request %d of 3: got %d; want 200", i+1, resp.StatusCode())
			}
		}
		before := seen.Count()
		resp := call(t, gw.proxy, "GET", "/c", "X-API-Key", "acme-key") // 3rd of 3
		if resp.StatusCode() != 200 {
			t.Fatalf("3rd request: got %d; want 200", resp.StatusCode())
		}
		resp = call(t, gw.proxy, "GET", "/c", "X-API-Key", "acme-key")
		if resp.StatusCode() != 429 {
			t.Fatalf("4th request: got %d; want 429", resp.StatusCode())
		}
		if ra := string(resp.Header.Peek("Retry-After")); ra == "" || ra == "0" {
			t.Fatalf("Retry-After %q; want a positive number of seconds", ra)
		}
		if got := string(resp.Header.Peek("X-RateLimit-Remaining")); got != "0" {
			t.Fatalf("X-RateLimit-Remaining %q; want 0", got)
		}
		p := problemBody(t, resp)
		if fmt.Sprint(p["violated-policies"]) != "[per_minute]" || !strings.Contains(p["type"].(string), "quota-exceeded") {
			t.Fatalf("problem %v; want quota-exceeded violating per_minute", p)
		}
		if n := seen.Count() - before; n != 1 {
			t.Fatalf("upstream saw %d requests; want 1 (the 429 is not forwarded)", n)
		}
	})

	t.Run("unknown and missing keys are 401", func(t *testing.T) {
		gw, _ := fresh(t)
		for _, hdr := range [][]string{{}, {"X-API-Key", "wrong"}, {"Authorization", "Basic abc"}} {
			resp := call(t, gw.proxy, "GET", "/", hdr...)
			if resp.StatusCode() != 401 || len(resp.Header.Peek("WWW-Authenticate")) == 0 {
				t.Fatalf("headers %v: got %d; want 401 with WWW-Authenticate", hdr, resp.StatusCode())
			}
			problemBody(t, resp)
		}
	})
}

func TestRouteLimitsAddToTenantLimits(t *testing.T) {
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up))
	resp := call(t, gw.proxy, "POST", "/v1/expensive/run", "X-API-Key", "acme-key")
	if resp.StatusCode() != 200 {
		t.Fatalf("1st POST: got %d; want 200", resp.StatusCode())
	}
	if got := string(resp.Header.Peek("RateLimit-Policy")); !strings.Contains(got, `"expensive";q=1;w=60`) {
		t.Fatalf("RateLimit-Policy %q; want the route's rule too", got)
	}
	resp = call(t, gw.proxy, "POST", "/v1/expensive/run", "X-API-Key", "acme-key")
	if resp.StatusCode() != 429 {
		t.Fatalf("2nd POST: got %d; want 429 from the route rule", resp.StatusCode())
	}
	if p := problemBody(t, resp); fmt.Sprint(p["violated-policies"]) != "[expensive]" {
		t.Fatalf("violated-policies %v; want [expensive]", p["violated-policies"])
	}
	// The denied POST was recorded nowhere: the tenant still has 2 of 3.
	if resp := call(t, gw.proxy, "GET", "/", "X-API-Key", "acme-key"); resp.StatusCode() != 200 || string(resp.Header.Peek("X-RateLimit-Remaining")) != "1" {
		t.Fatalf("GET after: got %d remaining %q; want 200 remaining 1", resp.StatusCode(), resp.Header.Peek("X-RateLimit-Remaining"))
	}
}

// TestAnonymousCallersAreCountedByIP: behind a trusted proxy (the test
// client, on 127.0.0.1) each X-Forwarded-For client has its own count.
func TestAnonymousCallersAreCountedByIP(t *testing.T) {
	up, _ := startUpstream(t)
	cfg := loadConfig(t, up, "tenants.unknown=anonymous", "tenants.anonymous_plan=small", "server.trusted_proxies=127.0.0.1/32")
	gw := startApp(t, cfg)
	for i := 0; i < 3; i++ {
		if resp := call(t, gw.proxy, "GET", "/", "X-Forwarded-For", "203.0.113.9"); resp.StatusCode() != 200 {
			t.Fatalf("anonymous request %d: got %d; want 200", i+1, resp.StatusCode())
		}
	}
	if resp := call(t, gw.proxy, "GET", "/", "X-Forwarded-For", "203.0.113.9"); resp.StatusCode() != 429 {
		t.Fatalf("4th from the same client: got %d; want 429", resp.StatusCode())
	}
	if resp := call(t, gw.proxy, "GET", "/", "X-Forwarded-For", "203.0.113.10"); resp.StatusCode() != 200 {
		t.Fatalf("another client: got %d; want 200", resp.StatusCode())
	}
}

// TestAnonymousIPv6CallerCannotRotateItsAddress: an IPv6 client has a /64
// at least, and the addresses of one /64 share a count; another /64 has
// its own. With anonymous_ipv6_prefix 128, every address has its own.
func TestAnonymousIPv6CallerCannotRotateItsAddress(t *testing.T) {
	up, _ := startUpstream(t)
	sets := []string{"tenants.unknown=anonymous", "tenants.anonymous_plan=small", "server.trusted_proxies=127.0.0.1/32"}
	gw := startApp(t, loadConfig(t, up, sets...))
	for i := range 3 {
		if resp := call(t, gw.proxy, "GET", "/", "X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%x", i+1)); resp.StatusCode() != 200 {
			t.Fatalf("anonymous request %d: got %d; want 200", i+1, resp.StatusCode())
		}
	}
	if resp := call(t, gw.proxy, "GET", "/", "X-Forwarded-For", "2001:db8:1:2:ffff::99"); resp.StatusCode() != 429 {
		t.Fatalf("4th from the same /64, another address: got %d; want 429", resp.StatusCode())
	}
	if resp := call(t, gw.proxy, "GET", "/", "X-Forwarded-For", "2001:db8:1:3::1"); resp.StatusCode() != 200 {
		t.Fatalf("another /64: got %d; want 200", resp.StatusCode())
	}

	perAddress := startApp(t, loadConfig(t, up, append(sets, "tenants.anonymous_ipv6_prefix=128")...))
	for i := range 4 {
		if resp := call(t, perAddress.proxy, "GET", "/", "X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%x", i+1)); resp.StatusCode() != 200 {
			t.Fatalf("/128, address %d of one /64: got %d; want 200", i+1, resp.StatusCode())
		}
	}
}

// TestUntrustedPeerCannotRotateItsIdentity: from a peer that is not a
// trusted proxy, X-Forwarded-For is ignored: every value shares the peer's
// count, and the upstream gets the peer alone.
func TestUntrustedPeerCannotRotateItsIdentity(t *testing.T) {
	up, seen := startUpstream(t)
	cfg := loadConfig(t, up, "tenants.unknown=anonymous", "tenants.anonymous_plan=small", "server.trusted_proxies=10.0.0.0/8")
	gw := startApp(t, cfg)
	for i := range 3 {
		if resp := call(t, gw.proxy, "GET", "/", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)); resp.StatusCode() != 200 {
			t.Fatalf("anonymous request %d: got %d; want 200", i+1, resp.StatusCode())
		}
		if xff := string(seen.Last().Header.Peek("X-Forwarded-For")); xff != "127.0.0.1" {
			t.Fatalf("upstream X-Forwarded-For %q; want the peer alone", xff)
		}
	}
	if resp := call(t, gw.proxy, "GET", "/", "X-Forwarded-For", "203.0.113.99"); resp.StatusCode() != 429 {
		t.Fatalf("4th from the same peer, another X-Forwarded-For: got %d; want 429", resp.StatusCode())
	}
}

func TestNoRouteIs404(t *testing.T) {
	up, _ := startUpstream(t)
	cfg := loadConfig(t, up)
	cfg.Routes[0].PathPrefix = "/api"
	gw := startApp(t, cfg)
	resp := call(t, gw.proxy, "GET", "/other", "X-API-Key", "acme-key")
	if resp.StatusCode() != 404 {
		t.Fatalf("got %d; want 404", resp.StatusCode())
	}
	problemBody(t, resp)
}

// TestRequestIDSurvivesConnectionNamingIt: a client naming X-Request-ID in
// Connection cannot strip it or garble the ID echoed back.
func TestRequestIDSurvivesConnectionNamingIt(t *testing.T) {
	up, seen := startUpstream(t)
	gw := startApp(t, loadConfig(t, up))
	resp := call(t, gw.proxy, "GET", "/", "X-API-Key", "bulk-key", "Connection", "X-Request-ID, X-Forwarded-For",
		"X-Request-ID", "keep-me-1", "X-Forwarded-For", "10.9.8.7")
	if got := string(resp.Header.Peek("X-Request-ID")); got != "keep-me-1" {
		t.Fatalf("response X-Request-ID %q; want keep-me-1", got)
	}
	if got := string(seen.Last().Header.Peek("X-Request-ID")); got != "keep-me-1" {
		t.Fatalf("upstream X-Request-ID %q; want keep-me-1", got)
	}
}

// TestUpstreamResponseFields: the rate-limit fields a client reads are
// the gateway's alone, however many copies of them the upstream sent
// (one used to be replaced, and a second went through beside it); and
// removing those and the hop-by-hop fields leaves the lines of every
// other name in the order the upstream sent them (fasthttp moves the last
// field into a deleted one's place: Link came out as <c>, <a>, <b>).
func TestUpstreamResponseFields(t *testing.T) {
	u := testkit.StartUpstream(t, func(ctx *fasthttp.RequestCtx) {
		h := &ctx.Response.Header
		h.Add("Keep-Alive", "timeout=5")
		h.Add("Link", "<a>")
		h.Add("X-RateLimit-Remaining", "999")
		h.Add("Link", "<b>")
		h.Add("X-RateLimit-Remaining", "998")
		h.Add("X-RateLimit-Status", "upstream")
		h.Add("X-RateLimit-Status", "upstream")
		h.Add("RateLimit", "upstream")
		h.Add("RateLimit", "upstream")
		h.Add("X-RateLimit-Shadow", "upstream")
		h.Add("Retry-After", "7") // the upstream's own answer, not a rate field
		h.Add("Link", "<c>")
		ctx.SetBodyString("ok")
	})
	gw := startApp(t, loadConfig(t, u.URL))
	resp := call(t, gw.proxy, "GET", "/x", "X-API-Key", "acme-key")
	want := map[string]string{
		"Link":                  "<a> | <b> | <c>",
		"X-RateLimit-Remaining": "2",
		"X-RateLimit-Status":    "ok",
		"RateLimit":             `"per_minute";r=2;t=60, "per_hour";r=99;t=3600`,
		"X-RateLimit-Shadow":    "",
		"Retry-After":           "7",
		"Keep-Alive":            "",
	}
	for name, w := range want {
		var got []string
		for _, v := range resp.Header.PeekAll(name) {
			got = append(got, string(v))
		}
		if g := strings.Join(got, " | "); g != w {
			t.Errorf("response %s: got %q; want %q", name, g, w)
		}
	}
}
