package gateway

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// panicLog is a log handler that panics on a failed forward's or
// upgrade's line: something that breaks mid-forward, after the request
// took its lease and before the lease is given back.
type panicLog struct{}

func (panicLog) Enabled(context.Context, slog.Level) bool { return true }

func (panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.HasSuffix(r.Message, " failed") {
		panic("log handler broke on " + r.Message)
	}
	return nil
}

func (h panicLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panicLog) WithGroup(string) slog.Handler      { return h }

// newLeaseGateway is a Gateway whose tenant "bulk" (key "bulk-key") may
// have one request in flight (plan concurrency 1, a lease of a minute),
// decided by the real Guard over the memory store. /dead is routed to an
// upstream nothing listens on, the rest to one that answers; its log
// panics on a failed forward or upgrade.
func newLeaseGateway(t *testing.T) *Gateway {
	t.Helper()
	snap, err := tenants.Build(tenants.Options{KeyHeader: "X-API-Key", Unknown: tenants.UnknownReject, Source: tenants.SourceConfig, LeaseTTL: time.Minute},
		map[string]tenants.Plan{"one": {Concurrency: 1}},
		[]tenants.Spec{{ID: "bulk", Plan: "one", Keys: []string{"bulk-key"}}}, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	spec := func(target string) upstream.Spec {
		return upstream.Spec{Targets: []string{target}, Timeout: 5 * time.Second, DialTimeout: time.Second,
			IdleConnTimeout: time.Minute, MaxConnsPerTarget: 16}
	}
	proxy, err := upstream.New(map[string]upstream.Spec{"dead": spec(testkit.DeadURL(t)), "live": spec(testkit.Serve(t, nil))},
		[]upstream.RouteSpec{{PathPrefix: "/dead", Upstream: "dead"}, {Upstream: "live"}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := degrade.New(limiter.NewMemoryStore(nil), degrade.Settings{Budget: time.Second, FailMode: degrade.FailOpen,
		Breaker: degrade.BreakerOptions{Failures: 5, Cooldown: time.Second}}, degrade.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return New(Parts{Tenants: tenants.NewTable(snap), Limiter: guard, Proxy: proxy, IDs: upstream.NewIDs("test"),
		Log: slog.New(panicLog{})})
}

// wireCtx is a RequestCtx holding the request read from wire, from
// 192.0.2.1.
func wireCtx(t *testing.T, wire string) *fasthttp.RequestCtx {
	t.Helper()
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(wire))); err != nil {
		t.Fatal(err)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}, nil)
	return ctx
}

// TestPanicMidForwardGivesBackTheLease: a request that panics after it
// took its concurrency lease (here its failed forward's log line) is
// answered 500 by the recoverer and gives its lease back, so that the
// tenant's next request, under a concurrency limit of 1, is admitted at
// once rather than refused until the lease's window (tenants.lease_ttl)
// ends. So for a request admitted on its headers (Expect: 100-continue)
// and for an upgrade.
func TestPanicMidForwardGivesBackTheLease(t *testing.T) {
	cases := []struct {
		name, wire string
		expect     bool
	}{
		{"plain", "GET /dead HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: bulk-key\r\n\r\n", false},
		{"expect", "POST /dead HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: bulk-key\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello", true},
		{"upgrade", "GET /dead HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: bulk-key\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gw := newLeaseGateway(t) // a log of its own: it lets one failure a second through
			serve := gw.Handler(quiet)
			before := panicsTotal.Get()
			ctx := wireCtx(t, tc.wire)
			if tc.expect {
				if code := gw.ExpectHandler(quiet)(ctx); code != fasthttp.StatusContinue {
					t.Fatalf("Expect: %d (%s); want 100", code, ctx.Response.Body())
				}
			}
			serve(ctx)
			if code := ctx.Response.StatusCode(); code != 500 || panicsTotal.Get() == before {
				t.Fatalf("status %d (%s), panics counted %d; want the recoverer's 500",
					code, ctx.Response.Body(), panicsTotal.Get()-before)
			}
			next := testkit.NewHandler(serve, "bulk-key", "GET", "/live")
			if code := next.Serve(); code != 200 {
				t.Fatalf("the next request: status %d (%s); want 200: the panicked request still holds its lease",
					code, next.Ctx.Response.Body())
			}
		})
	}
}
