package app

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/admin"
	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
)

// redisSets points a test config at a standalone Redis with a short breaker
// cooldown, so recovery is quick to observe.
func redisSets(addr string, more ...string) []string {
	return append([]string{"redis.mode=standalone", "redis.addrs=" + addr, "ratelimit.breaker.cooldown=200ms",
		"ratelimit.budget=50ms"}, more...)
}

func status(t *testing.T, addr string) (int, string) {
	resp := call(t, addr, "GET", "/d", "X-API-Key", "bulk-key")
	return resp.StatusCode(), string(resp.Header.Peek("X-RateLimit-Status"))
}

func TestRedisStallFallsOpenThenRecovers(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, redisSets(srv.Addr())...))
	if code, st := status(t, gw.proxy); code != 200 || st != "ok" {
		t.Fatalf("healthy: got %d %q; want 200 ok", code, st)
	}
	srv.Stall()
	for i := range 20 {
		if code, st := status(t, gw.proxy); code != 200 || st != "degraded" {
			t.Fatalf("stalled, request %d: got %d %q; want 200 degraded", i, code, st)
		}
	}
	resp := call(t, gw.admin, "GET", "/readyz")
	var r admin.Readiness
	json.Unmarshal(resp.Body(), &r)
	if resp.StatusCode() != 200 || r.Breaker == "closed" {
		t.Fatalf("/readyz while stalled: %d %s; want 200 (still serving) and the breaker not closed", resp.StatusCode(), resp.Body())
	}
	srv.Resume()
	testkit.Until(t, 5*time.Second, "X-RateLimit-Status ok after SIGCONT", func() bool {
		_, st := status(t, gw.proxy)
		return st == "ok"
	})
}

func TestRedisDownAtStartThenUp(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	srv.Kill()
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, redisSets(srv.Addr())...))
	if code, st := status(t, gw.proxy); code != 200 || st != "degraded" {
		t.Fatalf("Redis down at start: got %d %q; want 200 degraded", code, st)
	}
	srv.Restart(t)
	testkit.Until(t, 5*time.Second, "X-RateLimit-Status ok once Redis is up", func() bool {
		_, st := status(t, gw.proxy)
		return st == "ok"
	})
}

func TestFailModesWithRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	srv.Kill()
	up, seen := startUpstream(t)
	t.Run("closed", func(t *testing.T) {
		gw := startApp(t, loadConfig(t, up, redisSets(srv.Addr(), "ratelimit.fail_mode=closed")...))
		resp := call(t, gw.proxy, "GET", "/", "X-API-Key", "acme-key")
		if resp.StatusCode() != 503 || string(resp.Header.Peek("X-RateLimit-Status")) != "degraded" {
			t.Fatalf("got %d %q; want 503 degraded", resp.StatusCode(), resp.Header.Peek("X-RateLimit-Status"))
		}
		problemBody(t, resp)
	})
	t.Run("local", func(t *testing.T) {
		before := seen.Count()
		gw := startApp(t, loadConfig(t, up, redisSets(srv.Addr(), "ratelimit.fail_mode=local", "ratelimit.expected_gateways=2")...))
		codes := map[int]int{}
		for range 60 {
			resp := call(t, gw.proxy, "GET", "/", "X-API-Key", "team-key")
			if st := string(resp.Header.Peek("X-RateLimit-Status")); st != "degraded" {
				t.Fatalf("X-RateLimit-Status %q; want degraded", st)
			}
			codes[resp.StatusCode()]++
		}
		// 50 per 10s shared by 2 expected gateways: 25 here.
		if codes[200] != 25 || codes[429] != 35 || seen.Count()-before != 25 {
			t.Fatalf("local fail mode: %v, %d forwarded; want 25×200 and 35×429", codes, seen.Count()-before)
		}
	})
}

func TestReplicaDeniesWhileThePrimaryIsStalled(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3, DownAfter: time.Minute})
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "redis.mode=sentinel", "redis.addrs="+strings.Join(topo.SentinelAddrs(), ","),
		"redis.local_replicas="+topo.Replicas()[0].Addr(), "ratelimit.breaker.cooldown=30s", "ratelimit.budget=50ms"))
	testkit.Until(t, 5*time.Second, "/readyz shows the 3 sentinels reachable", func() bool {
		var r admin.Readiness
		json.Unmarshal(call(t, gw.admin, "GET", "/readyz").Body(), &r)
		return r.Sentinels != nil && *r.Sentinels == 3
	})
	for range 50 {
		call(t, gw.proxy, "GET", "/", "X-API-Key", "team-key") // fills 50 per 10s
	}
	topo.WaitReplicas(t)
	testkit.Until(t, 5*time.Second, "the replica shows the 50 records", func() bool {
		return topo.Replicas()[0].Client(t).ZCard(t.Context(), "l1gw:{team}:per_10s").Val() == 50
	})
	topo.Primary().Stall()
	defer topo.Primary().Resume()
	// Until the breaker opens, a request spends its whole budget waiting on
	// the stalled primary and has none left for the replica (one budget
	// per decision): open it with another tenant's requests first.
	testkit.Until(t, 5*time.Second, "the breaker opens", func() bool {
		status(t, gw.proxy)
		var r admin.Readiness
		json.Unmarshal(call(t, gw.admin, "GET", "/readyz").Body(), &r)
		return r.Breaker == "open"
	})
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := call(t, gw.proxy, "GET", "/", "X-API-Key", "team-key")
			if resp.StatusCode() != 429 || string(resp.Header.Peek("X-RateLimit-Status")) != "degraded" || len(resp.Header.Peek("Retry-After")) == 0 {
				t.Errorf("primary stalled, replica shows the rule full: got %d %q; want 429 degraded with Retry-After",
					resp.StatusCode(), resp.Header.Peek("X-RateLimit-Status"))
			}
		}()
	}
	wg.Wait()
	if code, _ := status(t, gw.proxy); code != 200 {
		t.Fatalf("another tenant while the primary is stalled: %d; want 200 (fail open)", code)
	}
}

// TestStartsExactWithEverySentinelDown: a gateway started while no
// sentinel answers finds the primary through its local replica's ROLE and
// decides exactly; /readyz says no sentinel is reachable.
func TestStartsExactWithEverySentinelDown(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3})
	for _, s := range topo.Sentinels() {
		s.Kill()
	}
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "redis.mode=sentinel", "redis.addrs="+strings.Join(topo.SentinelAddrs(), ","),
		"redis.local_replicas="+topo.Replicas()[0].Addr(), "ratelimit.budget=250ms"))
	for i := range 20 {
		if code, st := status(t, gw.proxy); code != 200 || st != "ok" {
			t.Fatalf("request %d, every sentinel down, primary healthy: %d %q; want 200 ok", i+1, code, st)
		}
	}
	var r admin.Readiness
	json.Unmarshal(call(t, gw.admin, "GET", "/readyz").Body(), &r)
	if r.Sentinels == nil || *r.Sentinels != 0 {
		t.Fatalf("/readyz sentinels_reachable %v; want 0", r.Sentinels)
	}
}
