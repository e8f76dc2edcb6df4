package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// reloadingDecider runs reloads while a decision waits, then admits.
type reloadingDecider struct{ during func() }

func (d reloadingDecider) Release(limiter.Request, *degrade.Verdict) {}
func (d reloadingDecider) Renew(limiter.Request, *degrade.Verdict)   {}

func (d reloadingDecider) Decide(_ context.Context, _ limiter.Request, v *degrade.Verdict) {
	d.during()
	*v = degrade.Verdict{Allowed: true}
}

// TestTwoReloadsDuringADecision: a tenant with an upstream of its own is
// forwarded to it even when two reloads, the first dropping that upstream,
// land while its decision waits. Before, the pool was looked up after the
// decision, found gone, and the request panicked into a 500.
func TestTwoReloadsDuringADecision(t *testing.T) {
	own := testkit.Serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("own") })
	other := testkit.Serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("other") })
	spec := func(u string) upstream.Spec {
		return upstream.Spec{Targets: []string{u}, Timeout: 5 * time.Second, DialTimeout: time.Second, IdleConnTimeout: time.Minute, MaxConnsPerTarget: 16}
	}
	opts := tenants.Options{KeyHeader: "X-API-Key", Unknown: "reject", Source: "config"}
	plans := map[string]tenants.Plan{"bulk": {Limits: fixtureRules}}
	snap, err := tenants.Build(opts, plans, []tenants.Spec{{ID: "bulk", Plan: "bulk", Keys: []string{"bulk-key"}, Upstream: "own"}},
		func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	routes := []upstream.RouteSpec{{Upstream: "other"}}
	proxy, err := upstream.New(map[string]upstream.Spec{"own": spec(own), "other": spec(other)}, routes, quiet)
	if err != nil {
		t.Fatal(err)
	}
	table := tenants.NewTable(snap)
	d := reloadingDecider{during: func() {
		// Reload 1 drops "own"; reload 2 changes something else.
		if err := proxy.Reload(map[string]upstream.Spec{"other": spec(other)}, routes); err != nil {
			t.Error(err)
		}
		slower := spec(other)
		slower.Timeout = 6 * time.Second
		if err := proxy.Reload(map[string]upstream.Spec{"other": slower}, routes); err != nil {
			t.Error(err)
		}
	}}
	gw := New(Parts{Tenants: table, Limiter: d, Proxy: proxy, IDs: upstream.NewIDs("test"), Log: quiet})
	f := testkit.NewHandler(gw.Serve, "bulk-key", "GET", "/x")
	if code := f.Serve(); code != 200 || string(f.Ctx.Response.Body()) != "own" {
		t.Errorf("got %d %q; want 200 from the tenant's own upstream, as resolved before the reloads", code, f.Ctx.Response.Body())
	}
}
