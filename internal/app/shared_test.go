package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/limiter"
)

// TestTwoGatewaysShareOneExactLimit is the mission in one test: two gateway
// instances on one Redis (a Sentinel topology; a 3-primary cluster), 200
// concurrent requests for a tenant limited to 50 per 10s spread over both;
// exactly 50 are admitted and forwarded, and the sorted set holds exactly 50
// members with a TTL.
func TestTwoGatewaysShareOneExactLimit(t *testing.T) {
	t.Parallel()
	t.Run("sentinel", func(t *testing.T) {
		t.Parallel()
		topo := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3})
		checkShared(t, []string{"redis.mode=sentinel", "redis.addrs=" + strings.Join(topo.SentinelAddrs(), ",")},
			func() *redis.Client { return topo.Primary().Client(t) })
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.Cluster(t, redistest.ClusterOptions{})
		checkShared(t, []string{"redis.mode=cluster", "redis.addrs=" + strings.Join(cl.Addrs(), ",")},
			func() *redis.Client { return cl.PrimaryFor(t, limiter.Key("exact", "team", "per_10s")).Client(t) })
	})
}

func checkShared(t *testing.T, sets []string, owner func() *redis.Client) {
	up, seen := startUpstream(t)
	// Exactness, not latency, is under test: generous timeouts keep a
	// loaded test machine from turning decisions into degraded ones.
	sets = append(sets, "ratelimit.key_prefix=exact", "redis.pool_timeout=2s", "redis.read_timeout=2s", "redis.write_timeout=2s", "ratelimit.budget=3s")
	gws := []*running{startApp(t, loadConfig(t, up, sets...)), startApp(t, loadConfig(t, up, sets...))}
	codes := fire(t, 200, func(i int) (string, string) { return "http://" + gws[i%2].proxy + "/shared", "team-key" },
		func(resp *fasthttp.Response) {
			if st := string(resp.Header.Peek("X-RateLimit-Status")); st != "ok" {
				t.Errorf("X-RateLimit-Status %q; want ok (Redis is healthy)", st)
			}
		})
	if codes[200] != 50 || codes[429] != 150 {
		t.Fatalf("status counts %v; want exactly 50×200 and 150×429", codes)
	}
	if n := seen.Count(); n != 50 {
		t.Fatalf("upstream saw %d requests; want exactly 50", n)
	}
	c := owner()
	key := limiter.Key("exact", "team", "per_10s")
	if n := c.ZCard(context.Background(), key).Val(); n != 50 {
		t.Fatalf("%s holds %d members; want 50", key, n)
	}
	if ttl := c.PTTL(context.Background(), key).Val(); ttl <= 0 || ttl > 10*time.Second {
		t.Fatalf("%s PTTL %v; want a TTL within the 10s window", key, ttl)
	}
}

// TestReplicaConsistencyThroughTheGateway: one gateway deciding on the local
// replica is still exact for its own traffic, and its records reach the
// primary through the recorder, flushed on shutdown.
func TestReplicaConsistencyThroughTheGateway(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3})
	up, seen := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "redis.mode=sentinel", "redis.addrs="+strings.Join(topo.SentinelAddrs(), ","),
		"redis.local_replicas="+topo.Replicas()[0].Addr(), "ratelimit.consistency=replica", "ratelimit.key_prefix=rc",
		"redis.pool_timeout=2s", "redis.read_timeout=2s", "redis.write_timeout=2s", "ratelimit.budget=3s"))
	codes := map[int]int{}
	for range 60 {
		resp := call(t, gw.proxy, "GET", "/r", "X-API-Key", "team-key")
		codes[resp.StatusCode()]++
	}
	if codes[200] != 50 || codes[429] != 10 || seen.Count() != 50 {
		t.Fatalf("status counts %v, upstream saw %d; want 50×200, 10×429, 50 forwarded", codes, seen.Count())
	}
	if err := gw.stop(t); err != nil {
		t.Fatal(err)
	}
	key := limiter.Key("rc", "team", "per_10s")
	if n := topo.Primary().Client(t).ZCard(context.Background(), key).Val(); n != 50 {
		t.Fatalf("primary holds %d records after shutdown; want 50", n)
	}
}
