package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/admin"
	"github.com/l1gw/l1gw/internal/testkit"
)

func TestUpstreamFailuresMapToStatus(t *testing.T) {
	up, _ := startUpstream(t)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	midBody := testkit.Listen(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nten bytes.")
		c.(*net.TCPConn).SetLinger(0)
		c.Close() // RST with 90 bytes of the body owed
	})
	hang := testkit.Listen(t, func(c net.Conn) {
		defer c.Close()
		io.Copy(io.Discard, c) // reads, never answers
	})
	cases := []struct {
		name, upstream, path string
		want                 int
	}{
		{"refused is 502", deadURL, "/", 502},
		{"timeout is 504", up, "/slow", 504},
		{"reset mid-body is 502", "http://" + midBody, "/", 502},
		{"hang is 504", "http://" + hang, "/", 504},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gw := startApp(t, loadConfig(t, tc.upstream))
			resp := call(t, gw.proxy, "GET", tc.path, "X-API-Key", "bulk-key")
			if resp.StatusCode() != tc.want {
				t.Fatalf("got %d %q; want %d", resp.StatusCode(), resp.Body(), tc.want)
			}
			problemBody(t, resp)
			// The decision was made: the rate-limit headers are still there.
			if string(resp.Header.Peek("X-RateLimit-Status")) != "ok" || len(resp.Header.Peek("RateLimit")) == 0 {
				t.Fatalf("headers %q; want the rate-limit headers on a failed forward too", resp.Header.String())
			}
		})
	}
}

func TestMalformedAndOversizedRequests(t *testing.T) {
	up, seen := startUpstream(t)
	gw := startApp(t, loadConfig(t, up))
	cases := []struct {
		name, payload string
		want          int
	}{
		{"garbage", "NOT HTTP AT ALL\r\n\r\n", 400},
		{"bad header line", "GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400},
		{"header block over max_header_bytes", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8000) + "\r\n\r\n", 431},
		{"body over max_body_bytes", "POST / HTTP/1.1\r\nHost: x\r\nX-API-Key: acme-key\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("b", 5000), 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := raw(t, gw.proxy, tc.payload)
			if resp.StatusCode() != tc.want {
				t.Fatalf("got %d %q; want %d", resp.StatusCode(), resp.Body(), tc.want)
			}
			problemBody(t, resp)
		})
	}
	if n := seen.Count(); n != 0 {
		t.Fatalf("upstream saw %d requests; want 0", n)
	}
	// The gateway still serves after all that.
	if resp := call(t, gw.proxy, "GET", "/", "X-API-Key", "acme-key"); resp.StatusCode() != 200 {
		t.Fatalf("after bad input: got %d; want 200", resp.StatusCode())
	}
}

func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	up, seen := startUpstream(t)
	cfg := loadConfig(t, up)
	cfg.Upstreams["main"] = withTimeout(cfg.Upstreams["main"], 5*time.Second)
	gw := startApp(t, cfg)

	var wg sync.WaitGroup
	results := make([]int, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := &fasthttp.Request{}, &fasthttp.Response{}
			req.SetRequestURI("http://" + gw.proxy + "/slow")
			req.Header.Set("X-API-Key", "bulk-key")
			if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
				results[i] = -1
				return
			}
			results[i] = resp.StatusCode()
		}()
	}
	// Wait until the requests are in flight at the upstream (it sleeps 600ms).
	testkit.Until(t, 5*time.Second, "the 4 requests at the upstream", func() bool { return seen.Count() == 4 })
	start := time.Now()
	if err := gw.stop(t); err != nil {
		t.Fatalf("Run returned %v; want nil after a graceful shutdown", err)
	}
	wg.Wait()
	for i, code := range results {
		if code != 200 {
			t.Fatalf("in-flight request %d: got %d; want 200 (finished during the grace)", i, code)
		}
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("shutdown took %v; want it to end once the requests finished", d)
	}
	if c, err := net.DialTimeout("tcp", gw.proxy, time.Second); err == nil {
		c.Close()
		t.Fatal("proxy port still accepts connections after shutdown")
	}
}

// TestPprofOnlyOnTheAdminListener: with server.pprof the profiler is on
// the admin listener behind the token, and never on the proxy's.
func TestPprofOnlyOnTheAdminListener(t *testing.T) {
	up, seen := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "server.admin_token=top-secret", "server.pprof=true"))
	if resp := call(t, gw.admin, "GET", "/debug/pprof/heap"); resp.StatusCode() != 401 {
		t.Fatalf("/debug/pprof/heap without the token: %d; want 401", resp.StatusCode())
	}
	resp := call(t, gw.admin, "GET", "/debug/pprof/heap?debug=1", "Authorization", "Bearer top-secret")
	if resp.StatusCode() != 200 || !strings.Contains(string(resp.Body()), "heap profile") {
		t.Fatalf("/debug/pprof/heap: %d %.80q; want 200 and a heap profile", resp.StatusCode(), resp.Body())
	}
	call(t, gw.proxy, "GET", "/debug/pprof/heap", "X-API-Key", "acme-key")
	if last := seen.Last(); last == nil || string(last.URI().Path()) != "/debug/pprof/heap" {
		t.Fatalf("the proxy did not forward /debug/pprof/heap to the upstream; it must not serve it itself")
	}
}

func TestAdminAPI(t *testing.T) {
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "server.admin_token=top-secret"))
	call(t, gw.proxy, "GET", "/", "X-API-Key", "acme-key")

	resp := call(t, gw.admin, "GET", "/healthz")
	if resp.StatusCode() != 200 {
		t.Fatalf("/healthz: %d", resp.StatusCode())
	}
	resp = call(t, gw.admin, "GET", "/readyz")
	var r admin.Readiness
	if err := json.Unmarshal(resp.Body(), &r); err != nil || resp.StatusCode() != 200 || r.Status != "ready" || r.Tenants != 7 || r.Store != "memory" {
		t.Fatalf("/readyz: %d %s; want 200 ready with 7 tenants on memory", resp.StatusCode(), resp.Body())
	}
	resp = call(t, gw.admin, "GET", "/metrics")
	for _, want := range []string{`l1gw_requests_total{tenant="acme",code="200"}`, `l1gw_ratelimit_decisions_total{tenant="acme",result="allowed"}`,
		`l1gw_request_duration_seconds_count`, `l1gw_upstream_errors_total{upstream="main",kind="refused"}`} {
		if !strings.Contains(string(resp.Body()), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if resp := call(t, gw.admin, "GET", "/v1/config"); resp.StatusCode() != 401 {
		t.Fatalf("/v1/config without the token: %d; want 401", resp.StatusCode())
	}
	if resp := call(t, gw.admin, "GET", "/debug/pprof/heap", "Authorization", "Bearer top-secret"); resp.StatusCode() != 404 {
		t.Fatalf("/debug/pprof/heap with server.pprof off: %d; want 404", resp.StatusCode())
	}
	resp = call(t, gw.admin, "GET", "/v1/config", "Authorization", "Bearer top-secret")
	body := string(resp.Body())
	if resp.StatusCode() != 200 || strings.Contains(body, "top-secret") || strings.Contains(body, "acme-key") || !strings.Contains(body, `"tenant_list"`) {
		t.Fatalf("/v1/config: %d, secrets must be redacted:\n%s", resp.StatusCode(), body)
	}
	if resp := call(t, gw.admin, "GET", "/healthz/"); resp.StatusCode() != 404 {
		t.Fatalf("/healthz/: got %d; want 404 (no redirects on the admin port)", resp.StatusCode())
	}
	if resp := call(t, gw.admin, "OPTIONS", "/healthz"); resp.StatusCode() == 200 || resp.StatusCode() == 204 {
		t.Fatalf("OPTIONS /healthz: got %d; want no automatic OPTIONS answer", resp.StatusCode())
	}
	// The admin API is not on the proxy port.
	if resp := call(t, gw.proxy, "GET", "/metrics", "X-API-Key", "acme-key"); strings.Contains(string(resp.Body()), "l1gw_requests_total") {
		t.Fatal("/metrics answered on the proxy port")
	}
}

func TestReadyzIsNotReadyWhileStopping(t *testing.T) {
	up, _ := startUpstream(t)
	app, err := Build(loadConfig(t, up), quiet)
	if err != nil {
		t.Fatal(err)
	}
	pl, al, err := app.Listen()
	if err != nil {
		t.Fatal(err)
	}
	admin := app.server
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- app.Run(ctx, pl, al) }()
	testkit.Eventually(t, 5*time.Second, func() error {
		if code := call(t, al.Addr().String(), "GET", "/readyz").StatusCode(); code != 200 {
			return fmt.Errorf("/readyz not ready: %d", code)
		}
		return nil
	})
	admin.ready(false)
	if resp := call(t, al.Addr().String(), "GET", "/readyz"); resp.StatusCode() != 503 {
		t.Fatalf("/readyz while stopping: got %d; want 503", resp.StatusCode())
	}
	cancel()
	<-done
}

func TestAdminTenantUsageAndReset(t *testing.T) {
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "server.admin_token=tok"))
	for range 4 {
		call(t, gw.proxy, "GET", "/", "X-API-Key", "acme-key")
	}
	cases := []struct {
		name, method, path string
		auth               []string
		want               int
	}{
		{"no token", "GET", "/v1/tenants/acme/usage", nil, 401},
		{"wrong token", "GET", "/v1/tenants/acme/usage", []string{"Authorization", "Bearer nope"}, 401},
		{"unknown tenant", "GET", "/v1/tenants/nobody/usage", []string{"Authorization", "Bearer tok"}, 404},
		{"usage", "GET", "/v1/tenants/acme/usage", []string{"Authorization", "Bearer tok"}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if resp := call(t, gw.admin, tc.method, tc.path, tc.auth...); resp.StatusCode() != tc.want {
				t.Fatalf("got %d %s; want %d", resp.StatusCode(), resp.Body(), tc.want)
			}
		})
	}
	resp := call(t, gw.admin, "GET", "/v1/tenants/acme/usage", "Authorization", "Bearer tok")
	var u struct {
		Tenant string
		Rules  []admin.RuleUsage
	}
	if err := json.Unmarshal(resp.Body(), &u); err != nil || u.Tenant != "acme" || len(u.Rules) != 3 {
		t.Fatalf("usage %s: want acme with its 3 rules (2 of the plan, 1 of a route)", resp.Body())
	}
	if r := u.Rules[0]; r.Name != "per_minute" || r.Used != 3 || r.Remaining != 0 || r.ResetSeconds <= 0 {
		t.Fatalf("per_minute usage %+v; want 3 used (the 4th was denied), 0 remaining, a reset", r)
	}
	if resp := call(t, gw.admin, "POST", "/v1/tenants/acme/reset", "Authorization", "Bearer tok"); resp.StatusCode() != 204 {
		t.Fatalf("reset: got %d; want 204", resp.StatusCode())
	}
	if resp := call(t, gw.proxy, "GET", "/", "X-API-Key", "acme-key"); resp.StatusCode() != 200 {
		t.Fatalf("after reset: got %d; want 200", resp.StatusCode())
	}
	off := startApp(t, loadConfig(t, up))
	if resp := call(t, off.admin, "GET", "/v1/tenants/acme/usage", "Authorization", "Bearer "); resp.StatusCode() != 403 {
		t.Fatalf("with no admin_token: got %d; want 403", resp.StatusCode())
	}
}
