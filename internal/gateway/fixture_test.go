package gateway

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var fixtureRules = []limiter.Rule{{Name: "per_minute", Limit: 100, Window: time.Minute}}

// newServeFixture serves a request to a Gateway over a decider the test
// chooses and a loopback upstream answering "upstream ok": no Redis, no
// YAML, no listener. Tenant "bulk" (key "bulk-key") has the rule
// per_minute, 100 per minute.
func newServeFixture(tb testing.TB, d Decider, key, method, path string) *testkit.Handler {
	tb.Helper()
	snap, err := tenants.Build(tenants.Options{KeyHeader: "X-API-Key", Unknown: "reject", Source: "config"},
		map[string]tenants.Plan{"bulk": {Limits: fixtureRules}},
		[]tenants.Spec{{ID: "bulk", Plan: "bulk", Keys: []string{"bulk-key"}}}, func(string) bool { return true })
	if err != nil {
		tb.Fatal(err)
	}
	proxy, err := upstream.New(map[string]upstream.Spec{"up": {Targets: []string{testkit.Serve(tb, nil)},
		Timeout: 5 * time.Second, DialTimeout: time.Second, IdleConnTimeout: time.Minute, MaxConnsPerTarget: 16}},
		[]upstream.RouteSpec{{Upstream: "up"}}, quiet)
	if err != nil {
		tb.Fatal(err)
	}
	gw := New(Parts{Tenants: tenants.NewTable(snap), Limiter: d, Proxy: proxy, IDs: upstream.NewIDs("test"), Log: quiet})
	return testkit.NewHandler(gw.Serve, key, method, path)
}
