package app

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// TestTwoGatewaysShareAConcurrencyLimit: two gateways on one Redis, a
// tenant whose plan allows 5 requests in flight, 50 concurrent slow
// requests spread over both. The upstream, counting, never has more than
// 5 of the tenant's requests at once; every other request is a 429 with
// Retry-After: 1 naming the concurrency limit; and once all have ended no
// lease is left in Redis.
func TestTwoGatewaysShareAConcurrencyLimit(t *testing.T) {
	t.Parallel()
	up, most := slowUpstream(t)
	srv := redistest.Server(t)
	sets := []string{"redis.mode=standalone", "redis.addrs=" + srv.Addr(), "ratelimit.key_prefix=conc",
		"ratelimit.budget=3s", "redis.read_timeout=2s"}
	gws := []*running{startApp(t, loadConfig(t, up.URL, sets...)), startApp(t, loadConfig(t, up.URL, sets...))}

	codes := fire(t, 50, func(i int) (string, string) { return "http://" + gws[i%2].proxy + "/crowd", "crowd-key" },
		leaseRefused(t, tenants.ConcurrencyRule))
	if m := most.Load(); m > 5 || m < 1 {
		t.Fatalf("the upstream had up to %d of the tenant's requests at once; want 1 to 5", m)
	}
	if codes[200] < 5 || codes[200]+codes[429] != 50 {
		t.Fatalf("status counts %v; want at least 5×200, the rest 429", codes)
	}
	waitNoLeases(t, srv.Client(t), limiter.LeaseKey("conc", "crowd", tenants.ConcurrencyRule))
	// The leases are free again: the next five fit at once.
	for range 5 {
		req, resp := &fasthttp.Request{}, &fasthttp.Response{}
		req.SetRequestURI("http://" + gws[0].proxy + "/crowd")
		req.Header.Set("X-API-Key", "crowd-key")
		if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("a request after the crowd: %v, status %d; want 200", err, resp.StatusCode())
		}
	}
}

// slowUpstream answers each request after 100 ms; most is the most
// requests it held at once.
func slowUpstream(t *testing.T) (up *testkit.Upstream, most *atomic.Int64) {
	var inFlight atomic.Int64
	most = new(atomic.Int64)
	up = testkit.StartUpstream(t, func(ctx *fasthttp.RequestCtx) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(100 * time.Millisecond)
		inFlight.Add(-1)
		ctx.SetBodyString("ok")
	})
	return up, most
}

// leaseRefused checks that a 429 is a concurrency limit's: Retry-After: 1
// and the limit named in violated-policies.
func leaseRefused(t *testing.T, name string) func(*fasthttp.Response) {
	return func(resp *fasthttp.Response) {
		if resp.StatusCode() != 429 {
			return
		}
		ra, body := string(resp.Header.Peek("Retry-After")), string(resp.Body())
		if ra != "1" || !strings.Contains(body, `"violated-policies":["`+name+`"]`) {
			t.Errorf("429 with Retry-After %q, body %s; want 1 and %s named", ra, body, name)
		}
	}
}

// waitNoLeases waits up to 5s for the lease set key to be empty.
func waitNoLeases(t *testing.T, c *redis.Client, key string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n := c.ZCard(context.Background(), key).Val(); n != 0; n = c.ZCard(context.Background(), key).Val() {
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d leases 5s after every response ended; want 0", key, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
