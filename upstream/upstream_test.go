package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/upstream"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func spec(targets ...string) upstream.Spec {
	return upstream.Spec{
		Targets: targets, Timeout: 2 * time.Second, MaxConnsPerTarget: 16, Retries: 1,
		DialTimeout: time.Second, IdleConnTimeout: 10 * time.Second,
	}
}

func newProxy(t *testing.T, s upstream.Spec) *upstream.Pool {
	t.Helper()
	p, err := upstream.New(map[string]upstream.Spec{"u": s}, []upstream.RouteSpec{{Upstream: "u"}}, quiet)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	pool, _ := p.Pool("u")
	return pool
}

func do(pool *upstream.Pool, method string) (*fasthttp.Response, error) {
	req, resp := &fasthttp.Request{}, &fasthttp.Response{}
	req.SetRequestURI("http://example.test/path?q=1")
	req.Header.SetMethod(method)
	return resp, pool.Forward(req, resp)
}

func TestForwardErrorsMapToStatus(t *testing.T) {
	slow := testkit.Serve(t, func(ctx *fasthttp.RequestCtx) { time.Sleep(300 * time.Millisecond) })
	cases := []struct {
		name   string
		spec   upstream.Spec
		kind   upstream.ErrorKind
		status int
	}{
		{"refused", spec(testkit.DeadURL(t)), upstream.KindRefused, 502},
		{"timeout", func() upstream.Spec { s := spec(slow); s.Timeout = 50 * time.Millisecond; return s }(), upstream.KindTimeout, 504},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := do(newProxy(t, tc.spec), "GET")
			var ue *upstream.Error
			if !errors.As(err, &ue) {
				t.Fatalf("Forward: got %v; want an *upstream.Error", err)
			}
			if ue.Kind != tc.kind || ue.Status() != tc.status {
				t.Fatalf("got kind %s status %d; want %s %d (%v)", ue.Kind, ue.Status(), tc.kind, tc.status, err)
			}
		})
	}
}

func TestForwardResetIs502(t *testing.T) {
	addr := testkit.Listen(t, func(c net.Conn) {
		c.Read(make([]byte, 1024))
		c.(*net.TCPConn).SetLinger(0)
		c.Close() // RST after reading the request
	})
	_, err := do(newProxy(t, spec("http://"+addr)), "POST")
	var ue *upstream.Error
	if !errors.As(err, &ue) || ue.Status() != 502 {
		t.Fatalf("Forward to a resetting upstream: got %v; want a 502 upstream.Error", err)
	}
}

func TestRetryOnlyIdempotentAndBeforeSending(t *testing.T) {
	var hits atomic.Int64
	live := testkit.Serve(t, func(ctx *fasthttp.RequestCtx) { hits.Add(1); ctx.SetBodyString("ok") })
	dead := testkit.DeadURL(t)
	pool := newProxy(t, spec(dead, live))
	// Every GET succeeds: a refused connection is tried again on the other target.
	for i := 0; i < 6; i++ {
		if _, err := do(pool, "GET"); err != nil {
			t.Fatalf("GET %d: %v; want success through the live target", i, err)
		}
	}
	// POSTs are never retried, so the ones balanced to the dead target fail.
	failed := 0
	for i := 0; i < 6; i++ {
		if _, err := do(pool, "POST"); err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("6 POSTs over a dead and a live target: none failed; want the dead target's share to fail (no retry)")
	}
	// A request the upstream answered slowly is not retried either.
	var slowHits atomic.Int64
	answered := make(chan struct{}, 4)
	slow := testkit.Serve(t, func(ctx *fasthttp.RequestCtx) {
		slowHits.Add(1)
		time.Sleep(200 * time.Millisecond)
		answered <- struct{}{}
	})
	s := spec(slow)
	s.Timeout = 50 * time.Millisecond
	s.Retries = 3
	if _, err := do(newProxy(t, s), "GET"); err == nil {
		t.Fatal("GET to a slow upstream: no error; want a timeout")
	}
	<-answered // a retry would have gone out at the timeout, long before
	if n := slowHits.Load(); n != 1 {
		t.Fatalf("slow upstream saw %d requests; want 1 (timeouts are not retried)", n)
	}
}

func TestHealthCheckSkipsFailingTarget(t *testing.T) {
	var sick atomic.Bool
	var aHits, bHits atomic.Int64
	mk := func(hits *atomic.Int64, canBeSick bool) string {
		return testkit.Serve(t, func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) == "/healthz" {
				if canBeSick && sick.Load() {
					ctx.SetStatusCode(503)
				}
				return
			}
			hits.Add(1)
		})
	}
	a, b := mk(&aHits, true), mk(&bHits, false)
	s := spec(a, b)
	s.Health = upstream.HealthSpec{Path: "/healthz", Interval: 20 * time.Millisecond, Timeout: time.Second}
	pool := newProxy(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go pool.Run(ctx)
	sick.Store(true)
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := pool.Healthy(); n != 1 {
			return fmt.Errorf("healthy targets: %d; want 1 after a's health check fails", n)
		}
		return nil
	})
	aHits.Store(0)
	for i := 0; i < 10; i++ {
		if _, err := do(pool, "GET"); err != nil {
			t.Fatal(err)
		}
	}
	if aHits.Load() != 0 || bHits.Load() < 10 {
		t.Fatalf("got a=%d b=%d requests; want all on b while a is unhealthy", aHits.Load(), bHits.Load())
	}
}

func TestStripHopByHop(t *testing.T) {
	// fasthttp keeps one Connection field (a later line replaces an
	// earlier one), so the names come as one comma-separated list.
	var h fasthttp.RequestHeader
	h.Set("Connection", "keep-alive, X-Secret ,x-other,X-Third")
	for _, k := range []string{"Keep-Alive", "Te", "Trailer", "Upgrade", "Proxy-Authorization", "Proxy-Connection", "X-Secret", "X-Other", "X-Third"} {
		h.Set(k, "v")
	}
	h.Set("X-Keep", "v")
	upstream.StripRequestHopByHop(&h)
	for _, k := range []string{"Connection", "Keep-Alive", "Te", "Trailer", "Upgrade", "Proxy-Authorization", "Proxy-Connection", "X-Secret", "X-Other", "X-Third"} {
		if v := h.Peek(k); len(v) > 0 {
			t.Errorf("%s: still %q after stripping", k, v)
		}
	}
	if string(h.Peek("X-Keep")) != "v" {
		t.Error("X-Keep: removed; want it kept (end-to-end header)")
	}
	var r fasthttp.ResponseHeader
	r.Set("Connection", "X-Hop")
	r.Set("X-Hop", "v")
	r.Set("Keep-Alive", "timeout=5")
	upstream.StripResponseHopByHop(&r)
	if len(r.Peek("X-Hop")) > 0 || len(r.Peek("Keep-Alive")) > 0 {
		t.Errorf("response: got %q; want hop-by-hop removed", r.String())
	}
}

func TestSetForwarded(t *testing.T) {
	cases := []struct {
		name                       string
		xff, proto, host           string
		trust, tls                 bool
		wantXFF, wantProto, wantXH string
	}{
		{"fresh", "", "", "", false, false, "192.0.2.7", "http", "api.test"},
		{"edge replaces a client's", "198.51.100.1", "http", "orig.test", false, true, "192.0.2.7", "https", "api.test"},
		{"untrusted overwrites", "", "https", "evil.test", false, false, "192.0.2.7", "http", "api.test"},
		{"trusted appends and keeps", "10.0.0.1", "https", "orig.test", true, false, "10.0.0.1, 192.0.2.7", "https", "orig.test"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			h.SetHost("api.test")
			if tc.xff != "" {
				h.Set("X-Forwarded-For", tc.xff)
			}
			if tc.proto != "" {
				h.Set("X-Forwarded-Proto", tc.proto)
				h.Set("X-Forwarded-Host", tc.host)
			}
			h.Set("Forwarded", "for=203.0.113.66")
			h.Set("x-real-ip", "203.0.113.66")
			h.Set("TRUE-CLIENT-IP", "203.0.113.66")
			upstream.SetForwarded(&h, upstream.Forwarded{ClientIP: net.ParseIP("192.0.2.7"), TLS: tc.tls, Trust: tc.trust})
			for _, name := range []string{"Forwarded", "X-Real-IP", "True-Client-IP"} {
				if v := string(h.Peek(name)); (v == "") == tc.trust {
					t.Fatalf("%s %q with trust=%v; want it removed at the edge, kept behind a trusted proxy", name, v, tc.trust)
				}
			}
			got := [3]string{string(h.Peek("X-Forwarded-For")), string(h.Peek("X-Forwarded-Proto")), string(h.Peek("X-Forwarded-Host"))}
			if want := [3]string{tc.wantXFF, tc.wantProto, tc.wantXH}; got != want {
				t.Fatalf("got %q; want %q", got, want)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	ids := upstream.NewIDs("abcd1234")
	cases := []struct{ in, wantPrefix string }{
		{"", "abcd1234-"},
		{"client-id.1:2_3", "client-id.1:2_3"},
		{"has space", "abcd1234-"},
		{strings.Repeat("x", 129), "abcd1234-"},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		var h fasthttp.RequestHeader
		if tc.in != "" {
			h.Set("X-Request-ID", tc.in)
		}
		got := string(ids.EnsureRequestID(&h))
		if !strings.HasPrefix(got, tc.wantPrefix) || string(h.Peek("X-Request-Id")) != got {
			t.Errorf("in %q: got %q (header %q); want prefix %q", tc.in, got, h.Peek("X-Request-Id"), tc.wantPrefix)
		}
		if seen[got] {
			t.Errorf("ID %q issued twice", got)
		}
		seen[got] = true
	}
}

func TestRoute(t *testing.T) {
	specs := map[string]upstream.Spec{"a": spec("http://127.0.0.1:1"), "b": spec("http://127.0.0.1:2"), "c": spec("http://127.0.0.1:3")}
	p, err := upstream.New(specs, []upstream.RouteSpec{
		{PathPrefix: "/", Upstream: "a"},
		{PathPrefix: "/api", Upstream: "b"},
		{Host: "special.test", Upstream: "c"},
		{Host: "fq.test.", Upstream: "b"}, // written fully qualified
		// At one prefix, tried as written: the case-sensitive one first.
		{PathPrefix: "/docs", Upstream: "b"},
		{PathPrefix: "/docs", CaseInsensitive: true, Upstream: "a"},
	}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ host, path, want string }{
		{"x.test", "/docs/x", "b"},
		{"x.test", "/DOCS/x", "a"},
		{"x.test", "/", "a"},
		{"x.test", "/api/v1", "b"},
		{"special.test:8080", "/api", "c"},
		{"SPECIAL.test", "/", "c"},
		{"special.test.", "/", "c"},      // fully qualified: the same name
		{"special.test.:8080", "/", "c"}, // with a port
		{"fq.test.", "/", "b"},
		{"fq.test", "/", "b"},
	}
	for _, tc := range cases {
		got := p.Route([]byte(tc.host), []byte(tc.path))
		if got == nil || got.Name != tc.want {
			t.Errorf("Route(%s, %s): got %v; want %s", tc.host, tc.path, got, tc.want)
		}
	}
	only, _ := upstream.New(specs, []upstream.RouteSpec{{PathPrefix: "/api", Upstream: "b"}}, quiet)
	if got := only.Route([]byte("x"), []byte("/other")); got != nil {
		t.Errorf("Route outside every prefix: got %s; want nil", got.Name)
	}
}

func TestValidate(t *testing.T) {
	bad := spec("ftp://x", "http://h:1/path")
	bad.Timeout, bad.Retries = 0, -1
	err := upstream.Validate(map[string]upstream.Spec{"u": bad}, []upstream.RouteSpec{{Upstream: "nope"},
		{Host: "a.test", PathPrefix: "/x", Upstream: "u"}, {Host: "A.TEST", PathPrefix: "/x", Upstream: "u"},
		{PathPrefix: "/y", CaseInsensitive: true, Upstream: "u"}, {PathPrefix: "/Y", CaseInsensitive: true, Upstream: "u"},
		{PathPrefix: "/z", Upstream: "u"}, {PathPrefix: "/Z", Upstream: "u"}, {PathPrefix: "/z", CaseInsensitive: true, Upstream: "u"},
		{PathPrefix: "/w", CaseInsensitive: true, Upstream: "u"}, {PathPrefix: "/W", Upstream: "u"},
		{Host: "b.test", PathPrefix: "/v", Upstream: "u"}, {Host: "B.test.", PathPrefix: "/v", Upstream: "u"}})
	for _, want := range []string{"upstreams.u.targets[0]", "upstreams.u.targets[1]", "upstreams.u.timeout", "upstreams.u.retries", `routes[0].upstream: unknown upstream "nope"`,
		"routes[2]: can never be used: routes[1]", "routes[4]: can never be used: routes[3]", "routes[9]: can never be used: routes[8]",
		"routes[11]: can never be used: routes[10]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: got %v; want an error about %s", err, want)
		}
	}
	for _, distinct := range []string{"routes[6]", "routes[7]"} {
		if strings.Contains(err.Error(), distinct+":") {
			t.Errorf("Validate: %v; %s matches requests of its own", err, distinct)
		}
	}
}

// TestValidateHidesTargetPasswords: a target with credentials is refused
// without the password in the error, which is logged and answered by
// /v1/reload.
func TestValidateHidesTargetPasswords(t *testing.T) {
	for _, target := range []string{"http://admin:hunter2@h:1", "ftp://admin:hunter2@h:1", "http://admin:hunter2@h:1/%zz"} {
		err := upstream.Validate(map[string]upstream.Spec{"u": spec(target)}, []upstream.RouteSpec{{Upstream: "u"}})
		if err == nil || !strings.Contains(err.Error(), "upstreams.u.targets[0]") {
			t.Errorf("%s: got %v; want an error about upstreams.u.targets[0]", target, err)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error %q shows the password", target, err)
		}
	}
}

// TestIsForwarding: the X-Forwarded-* family and the client address
// fields, in any case and with '_' for '-'; nothing else.
func TestIsForwarding(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Forwarded-For": true, "x-forwarded-port": true, "X_Forwarded_Prefix": true, "X-FORWARDED-SSL": true,
		"X-Forwarded-Scheme": true, "Forwarded": true, "X-Real-IP": true, "true_client_ip": true, "Client-IP": true,
		"X-Client-IP": true, "X-Cluster-Client-IP": true, "CF-Connecting-IP": true, "Fastly-Client-IP": true,
		"Forwarded-For": true, "X-Original-Forwarded-For": true,
		"X-Forwarded-": false, "X-Forwarded": false, "X-Forwardedx-For": false, "Forwarded-Forx": false,
		"X-Request-Id": false, "Via": false, "X-Api-Key": false, "": false,
	} {
		if got := upstream.IsForwarding([]byte(name)); got != want {
			t.Errorf("IsForwarding(%q) = %v; want %v", name, got, want)
		}
	}
}
