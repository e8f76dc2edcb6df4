package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// withRoute is cfg with a route named name for /<name>, first, to the
// main upstream, with limits and concurrency.
func withRoute(cfg *config.Config, name string, limits []limiter.Rule, concurrency int64) *config.Config {
	r := upstream.RouteSpec{Name: name, PathPrefix: "/" + name, Upstream: "main", Limits: limits, Concurrency: concurrency, LeaseTTL: cfg.Tenants.LeaseTTL}
	cfg.Routes = append([]upstream.RouteSpec{r}, cfg.Routes...)
	return cfg
}

// TestTwoGatewaysShareARouteLimit: a route limited to 20 per 10s for
// every tenant together, two gateways on one Redis (a Sentinel topology;
// a 3-primary cluster, where the route's key is in another slot than the
// tenants'), two tenants whose own plans would admit everything, 60
// concurrent requests over both: exactly 20 reach the upstream, the other
// 40 are 429s naming the route's limit, and its sorted set holds exactly
// 20 members. The same upstream by another route is not limited by it.
func TestTwoGatewaysShareARouteLimit(t *testing.T) {
	t.Parallel()
	key := limiter.Key("route", upstream.RouteScope("search"), "search_per_10s")
	t.Run("sentinel", func(t *testing.T) {
		t.Parallel()
		topo := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3})
		checkRouteLimit(t, key, []string{"redis.mode=sentinel", "redis.addrs=" + strings.Join(topo.SentinelAddrs(), ",")},
			func() *redis.Client { return topo.Primary().Client(t) })
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.Cluster(t, redistest.ClusterOptions{})
		checkRouteLimit(t, key, []string{"redis.mode=cluster", "redis.addrs=" + strings.Join(cl.Addrs(), ",")},
			func() *redis.Client { return cl.PrimaryFor(t, key).Client(t) })
	})
}

// checkRouteLimit runs TestTwoGatewaysShareARouteLimit on the Redis of
// sets; owner is a client of the primary that holds key, the route's.
func checkRouteLimit(t *testing.T, key string, sets []string, owner func() *redis.Client) {
	up, seen := startUpstream(t)
	sets = append(sets, "ratelimit.key_prefix=route", "redis.pool_timeout=2s", "redis.read_timeout=2s", "redis.write_timeout=2s", "ratelimit.budget=3s")
	limits := []limiter.Rule{{Name: "search_per_10s", Limit: 20, Window: 10 * time.Second}}
	gws := []*running{startApp(t, withRoute(loadConfig(t, up, sets...), "search", limits, 0)),
		startApp(t, withRoute(loadConfig(t, up, sets...), "search", limits, 0))}
	keys := []string{"bulk-key", "trying-key"}
	codes := fire(t, 60, func(i int) (string, string) { return "http://" + gws[i%2].proxy + "/search/x", keys[(i/2)%2] },
		func(resp *fasthttp.Response) {
			if resp.StatusCode() == 429 && !strings.Contains(string(resp.Body()), `"violated-policies":["search_per_10s"]`) {
				t.Errorf("429 body %s; want the route's limit named", resp.Body())
			}
			if st := string(resp.Header.Peek("X-RateLimit-Status")); st != "ok" {
				t.Errorf("X-RateLimit-Status %q; want ok (Redis is healthy)", st)
			}
		})
	if codes[200] != 20 || codes[429] != 40 {
		t.Fatalf("status counts %v; want exactly 20×200 and 40×429", codes)
	}
	if n := seen.Count(); n != 20 {
		t.Fatalf("the upstream saw %d requests; want 20", n)
	}
	if n := owner().ZCard(context.Background(), key).Val(); n != 20 {
		t.Fatalf("%s holds %d members; want 20", key, n)
	}
	req, resp := &fasthttp.Request{}, &fasthttp.Response{}
	req.SetRequestURI("http://" + gws[0].proxy + "/elsewhere")
	req.Header.Set("X-API-Key", "bulk-key")
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("a request by another route to the same upstream: %v, %d; want 200", err, resp.StatusCode())
	}
}

// TestTwoGatewaysShareARouteConcurrencyLimit: a route with concurrency 4,
// two gateways on one Redis, two tenants, 40 concurrent slow requests
// over both. The upstream never has more than 4 of the route's requests
// at once, every other request is a 429 with Retry-After: 1 naming the
// route's concurrency limit, and afterwards no lease is left.
func TestTwoGatewaysShareARouteConcurrencyLimit(t *testing.T) {
	t.Parallel()
	up, most := slowUpstream(t)
	srv := redistest.Server(t)
	sets := []string{"redis.mode=standalone", "redis.addrs=" + srv.Addr(), "ratelimit.key_prefix=rconc",
		"ratelimit.budget=3s", "redis.read_timeout=2s"}
	gws := []*running{startApp(t, withRoute(loadConfig(t, up.URL, sets...), "export", nil, 4)),
		startApp(t, withRoute(loadConfig(t, up.URL, sets...), "export", nil, 4))}
	keys := []string{"bulk-key", "trying-key"}
	codes := fire(t, 40, func(i int) (string, string) { return "http://" + gws[i%2].proxy + "/export", keys[(i/2)%2] },
		leaseRefused(t, upstream.RouteConcurrencyRule))
	if m := most.Load(); m > 4 || m < 1 {
		t.Fatalf("the upstream had up to %d of the route's requests at once; want 1 to 4", m)
	}
	if codes[200] < 4 || codes[200]+codes[429] != 40 {
		t.Fatalf("status counts %v; want at least 4×200, the rest 429", codes)
	}
	waitNoLeases(t, srv.Client(t), limiter.LeaseKey("rconc", upstream.RouteScope("export"), upstream.RouteConcurrencyRule))
}

// TestATenantRouteConcurrencyLimit: a tenant's own route with concurrency
// 2, on the memory store, 20 concurrent slow requests to it: the upstream
// never has more than 2 at once, the rest are 429s with Retry-After: 1
// naming the route's limit, and once they have ended the next 2 fit.
func TestATenantRouteConcurrencyLimit(t *testing.T) {
	t.Parallel()
	up, most := slowUpstream(t)
	cfg := loadConfig(t, up.URL)
	for i := range cfg.TenantList {
		if cfg.TenantList[i].ID == "bulk" {
			cfg.TenantList[i].Routes = append(cfg.TenantList[i].Routes, tenants.RouteSpec{PathPrefix: "/export", Name: "exports_in_flight", Concurrency: 2})
		}
	}
	gw := startApp(t, cfg)
	codes := fire(t, 20, func(int) (string, string) { return "http://" + gw.proxy + "/export", "bulk-key" },
		leaseRefused(t, "exports_in_flight"))
	if m := most.Load(); m > 2 || m < 1 {
		t.Fatalf("the upstream had up to %d of the route's requests at once; want 1 to 2", m)
	}
	if codes[200] < 2 || codes[429] == 0 || codes[200]+codes[429] != 20 {
		t.Fatalf("status counts %v; want at least 2×200, the rest 429", codes)
	}
	for range 2 {
		if resp := call(t, gw.proxy, "GET", "/export", "X-API-Key", "bulk-key"); resp.StatusCode() != 200 {
			t.Fatalf("a request after the crowd: status %d; want 200, its leases given back", resp.StatusCode())
		}
	}
}
