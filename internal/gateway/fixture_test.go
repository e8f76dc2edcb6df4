package gateway

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// serveFixture calls Gateway.Serve directly on a reused RequestCtx, over
// a decider the test chooses and a loopback upstream answering
// "upstream ok": no Redis, no YAML. Tenant "bulk" (key "bulk-key") has
// the rule per_minute, 100 per minute.
type serveFixture struct {
	gw   *Gateway
	tmpl fasthttp.Request
	ctx  fasthttp.RequestCtx
}

var fixtureRules = []limiter.Rule{{Name: "per_minute", Limit: 100, Window: time.Minute}}

func newServeFixture(tb testing.TB, d Decider, key, method, path string) *serveFixture {
	tb.Helper()
	snap, err := tenants.Build(tenants.Options{KeyHeader: "X-API-Key", Unknown: "reject", Source: "config"},
		map[string]tenants.Plan{"bulk": {Limits: fixtureRules}},
		[]tenants.Spec{{ID: "bulk", Plan: "bulk", Keys: []string{"bulk-key"}}}, func(string) bool { return true })
	if err != nil {
		tb.Fatal(err)
	}
	proxy, err := upstream.New(map[string]upstream.Spec{"up": {Targets: []string{loopbackUpstream(tb)},
		Timeout: 5 * time.Second, DialTimeout: time.Second, IdleConnTimeout: time.Minute, MaxConnsPerTarget: 16}},
		[]upstream.RouteSpec{{Upstream: "up"}}, quiet)
	if err != nil {
		tb.Fatal(err)
	}
	f := &serveFixture{gw: New(Parts{Tenants: tenants.NewTable(snap), Limiter: d, Proxy: proxy,
		IDs: upstream.NewIDs("test"), Log: quiet})}
	f.tmpl.SetRequestURI("http://gw.test" + path)
	f.tmpl.Header.SetMethod(method)
	f.tmpl.Header.Set("X-API-Key", key)
	f.ctx.Init(&f.tmpl, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}, nil)
	return f
}

// serve runs one request and returns its status.
func (f *serveFixture) serve() int {
	f.tmpl.CopyTo(&f.ctx.Request)
	f.ctx.Response.Reset()
	f.gw.Serve(&f.ctx)
	return f.ctx.Response.StatusCode()
}

// loopbackUpstream serves "upstream ok" on a loopback port until the test
// ends.
func loopbackUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("upstream ok") }}
	go s.Serve(ln) //nolint:errcheck // ends with Shutdown
	tb.Cleanup(func() { s.Shutdown() })
	return "http://" + ln.Addr().String()
}
