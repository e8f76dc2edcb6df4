package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/upstream"
)

// TestTwoGatewaysShareAnUpstreamLimit: an upstream limited to 20 per 10s
// for every tenant together, two gateways on one Sentinel topology, two
// tenants whose own plans would admit everything, 60 concurrent requests
// over both: exactly 20 reach the upstream, the other 40 are 429s naming
// the shared limit, and its sorted set holds exactly 20 members.
func TestTwoGatewaysShareAnUpstreamLimit(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3})
	up, seen := startUpstream(t)
	sets := []string{"redis.mode=sentinel", "redis.addrs=" + strings.Join(topo.SentinelAddrs(), ","), "ratelimit.key_prefix=shared",
		"redis.pool_timeout=2s", "redis.read_timeout=2s", "redis.write_timeout=2s", "ratelimit.budget=3s"}
	metered := func() *config.Config {
		cfg := loadConfig(t, up, sets...)
		spec := cfg.Upstreams["main"]
		spec.Limits = []limiter.Rule{{Name: "upstream_per_10s", Limit: 20, Window: 10 * time.Second}}
		cfg.Upstreams["metered"] = spec
		cfg.Routes = append([]upstream.RouteSpec{{PathPrefix: "/metered", Upstream: "metered"}}, cfg.Routes...)
		return cfg
	}
	gws := []*running{startApp(t, metered()), startApp(t, metered())}
	keys := []string{"bulk-key", "trying-key"}
	codes := fire(t, 60, func(i int) (string, string) { return "http://" + gws[i%2].proxy + "/metered/x", keys[(i/2)%2] },
		func(resp *fasthttp.Response) {
			if resp.StatusCode() == 429 && !strings.Contains(string(resp.Body()), `"violated-policies":["upstream_per_10s"]`) {
				t.Errorf("429 body %s; want the shared limit named", resp.Body())
			}
		})
	if codes[200] != 20 || codes[429] != 40 {
		t.Fatalf("status counts %v; want exactly 20×200 and 40×429", codes)
	}
	if n := seen.Count(); n != 20 {
		t.Fatalf("the upstream saw %d requests; want 20", n)
	}
	key := limiter.Key("shared", upstream.SharedScope("metered"), "upstream_per_10s")
	if n := topo.Primary().Client(t).ZCard(context.Background(), key).Val(); n != 20 {
		t.Fatalf("%s holds %d members; want 20", key, n)
	}
	// Another upstream is not limited by it.
	req, resp := &fasthttp.Request{}, &fasthttp.Response{}
	req.SetRequestURI("http://" + gws[0].proxy + "/elsewhere")
	req.Header.Set("X-API-Key", "bulk-key")
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("a request to another upstream: %v, %d; want 200", err, resp.StatusCode())
	}
}
