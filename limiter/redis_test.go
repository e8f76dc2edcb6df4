package limiter_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/limiter/storetest"
)

// redisOptions are the options of a standalone store at addr.
func redisOptions(mode string, addrs ...string) limiter.RedisOptions {
	return limiter.RedisOptions{
		Mode: mode, Addrs: addrs, MasterName: "mymaster",
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		PoolTimeout: time.Second, MaxRetries: 1,
	}
}

var instances atomic.Int64

// contractWindow is the contract suite's window on real Redis: the
// sliding-window cases time decisions against it, and under go test ./...
// on two loaded cores a decision can take tens of milliseconds. At 800 ms
// 22 decisions of DeniedIsNeverRecorded once outlasted the window (make
// test, a loaded machine): the window slid and the 8th was admitted.
const contractWindow = 2 * time.Second

// testBudget is the stores' budget in tests: generous, since the race
// detector and parallel Redis processes share two cores.
const testBudget = time.Second

// testQueueTimeout is the stores' queue timeout in tests: a clean-clone
// CI run once shed a lone decision of the Sentinel contract suite after
// the default second ("too many decisions waiting for Redis"), while
// Cluster decisions in a parallel test took 180 ms each.
const testQueueTimeout = 10 * time.Second

// newRedisStore returns a store on o with its own key prefix.
func newRedisStore(t testing.TB, o limiter.RedisOptions, denyCache bool) (*limiter.RedisStore, string) {
	t.Helper()
	return newRedisStoreAt(t, o, denyCache, nil)
}

// offsetClock is the real clock plus an offset a test moves: the
// test-only time offset that lets a month pass at once for the fixed
// rules, which the gateway's clock places in their periods. Redis' own
// clock, which sliding rules count by, is not moved.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// contractEnv is the contract suite's Env for a Redis store s made with
// newRedisStoreAt and clk.
func contractEnv(s limiter.Store, clk *offsetClock, window time.Duration) storetest.Env {
	return storetest.Env{Store: s, Wait: time.Sleep, Window: window, Calendar: clk}
}

// newRedisStoreAt is newRedisStore with the gateway's clock now (nil:
// time.Now).
func newRedisStoreAt(t testing.TB, o limiter.RedisOptions, denyCache bool, now func() time.Time) (*limiter.RedisStore, string) {
	t.Helper()
	clients, err := limiter.NewClients(o)
	if err != nil {
		t.Fatalf("NewClients: %v", err)
	}
	t.Cleanup(func() { clients.Close() })
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	t.Cleanup(func() { stop(); <-ran }) // before the clients close
	prefix := fmt.Sprintf("t%d", instances.Add(1))
	s, err := limiter.NewRedisStore(clients, limiter.Options{Consistency: "exact", KeyPrefix: prefix, DenyCache: denyCache,
		QueueTimeout: testQueueTimeout},
		testBudget, fmt.Sprintf("gw%d", instances.Add(1)), now)
	if err != nil {
		t.Fatalf("NewRedisStore: %v", err)
	}
	go func() {
		defer close(ran)
		s.Run(ctx) // the releases of concurrency limits
	}()
	return s, prefix
}

func TestRedisStoreContractStandalone(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	storetest.Run(t, func(t *testing.T) storetest.Env {
		clk := &offsetClock{}
		s, _ := newRedisStoreAt(t, redisOptions(limiter.ModeStandalone, srv.Addr()), false, clk.Now)
		return contractEnv(s, clk, contractWindow)
	})
}

func TestRedisStoreContractSentinel(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3})
	storetest.Run(t, func(t *testing.T) storetest.Env {
		clk := &offsetClock{}
		s, _ := newRedisStoreAt(t, redisOptions(limiter.ModeSentinel, topo.SentinelAddrs()...), false, clk.Now)
		return contractEnv(s, clk, contractWindow)
	})
}

func decideOK(t testing.TB, s limiter.Store, tenant string, rules ...limiter.Rule) limiter.Decision {
	t.Helper()
	d, err := s.Decide(context.Background(), limiter.Request{Tenant: tenant, Rules: rules})
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return d
}

// TestScriptOnRealRedis checks what only the real server shows: scores and
// members as Redis' Lua formats them, TTLs, and what a denial leaves behind.
func TestScriptOnRealRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	c := srv.Client(t)
	ctx := context.Background()
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
	sec := limiter.Rule{Name: "sec", Limit: 5, Window: 1500 * time.Millisecond, Cost: 2}
	min := limiter.Rule{Name: "min", Limit: 100, Window: time.Minute}

	decided := time.Now()
	if d := decideOK(t, s, "acme", sec, min); !d.Allowed || d.Rules[0].Remaining != 3 || d.Rules[1].Remaining != 99 {
		t.Fatalf("1st: got %+v; want allowed, remaining 3 and 99", d.States())
	}
	secKey, minKey := limiter.Key(prefix, "acme", "sec"), limiter.Key(prefix, "acme", "min")
	members, err := c.ZRangeWithScores(ctx, secKey, 0, -1).Result()
	if err != nil || len(members) != 2 {
		t.Fatalf("sec set: %v %v; want 2 members (cost 2)", members, err)
	}
	for _, m := range members {
		name := m.Member.(string)
		if strings.ContainsAny(name, "e+") || m.Score < 1e15 || m.Score != float64(int64(m.Score)) {
			t.Fatalf("member %q score %v; want a string member and an integer µs score", name, m.Score)
		}
	}
	if members[0].Member == members[1].Member {
		t.Fatal("the two units of one request share a member")
	}
	for _, k := range []string{secKey, minKey} {
		ttl := c.PTTL(ctx, k).Val()
		if ttl <= 0 {
			t.Fatalf("%s: PTTL %v; want a TTL", k, ttl)
		}
	}
	// The window from the decision on (PEXPIRE, not EXPIRE of 1s): less
	// what passed since, which a loaded machine makes long.
	if ttl, least := c.PTTL(ctx, secKey).Val(), 1500*time.Millisecond-time.Since(decided)-50*time.Millisecond; ttl > 1500*time.Millisecond || ttl < least {
		t.Fatalf("sec PTTL %v; want the window, 1.5s, less the time since the decision: at least %v (PEXPIRE, not EXPIRE w/1000)", ttl, least)
	}
	decideOK(t, s, "acme", sec, min) // 4 of 5 used
	d := decideOK(t, s, "acme", sec, min)
	if d.Allowed || !d.Rules[0].Denied() || d.Rules[1].Denied() {
		t.Fatalf("3rd (cost 2 over 4 of 5): got %+v; want denied by sec only", d.States())
	}
	if n := c.ZCard(ctx, minKey).Val(); n != 2 {
		t.Fatalf("min set holds %d members after a denial; want 2 (denied is never recorded)", n)
	}
	// The earliest the request fits is when the first request's two units
	// leave the 1.5s window: recorded after decided, so at least 1.5s less
	// all the time since (a loaded machine makes that long), at most 1.5s.
	least := 1500*time.Millisecond - time.Since(decided) - time.Millisecond
	if ra := d.Rules[0].RetryAfter; ra < least || ra > 1500*time.Millisecond {
		t.Fatalf("retry-after %v; want between %v and 1.5s", ra, least)
	}
}

// TestBurstInOneMicrosecondCountsEveryRequest: many requests can share a
// TIME value; members must still be distinct.
func TestBurstInOneMicrosecondCountsEveryRequest(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	c := srv.Client(t)
	a, prefix := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
	r := limiter.Rule{Name: "r", Limit: 10_000, Window: time.Minute}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if _, err := a.Decide(context.Background(), limiter.Request{Tenant: "burst", Rules: []limiter.Rule{r}}); err != nil {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := c.ZCard(context.Background(), limiter.Key(prefix, "burst", "r")).Val(); n != 800 {
		t.Fatalf("set holds %d members; want 800 (one per request)", n)
	}
}

func TestNoScriptIsReloaded(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	s, _ := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
	r := limiter.Rule{Name: "r", Limit: 100, Window: time.Minute}
	decideOK(t, s, "acme", r)
	if err := srv.Client(t).ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if d := decideOK(t, s, "acme", r); d.Rules[0].Remaining != 98 {
		t.Fatalf("after SCRIPT FLUSH: remaining %d; want 98", d.Rules[0].Remaining)
	}
}

func TestRestartedRedisServesAgain(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	s, _ := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
	r := limiter.Rule{Name: "r", Limit: 100, Window: time.Minute}
	decideOK(t, s, "acme", r)
	srv.Kill()
	srv.Restart(t)
	// The pooled connection is dead; the one retry redials, and the script
	// cache of the new process is empty: still no error.
	if d := decideOK(t, s, "acme", r); !d.Allowed || d.Rules[0].Remaining != 99 {
		t.Fatalf("after a restart (data lost, no persistence): got %+v; want allowed, 99 left", d.States())
	}
}

// commands counts the calls of a Redis command since the server started.
func commands(t *testing.T, c *redis.Client, name string) int64 {
	t.Helper()
	return limiter.CommandCalls(t, c, name)
}

func TestDenyCacheSpendsNoRedisCall(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	c := srv.Client(t)
	s, _ := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), true)
	rules := []limiter.Rule{{Name: "r", Limit: 2, Window: 700 * time.Millisecond}}
	req := limiter.Request{Tenant: "acme", Rules: rules}
	decide := func() limiter.Decision {
		d, err := s.Decide(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	decide()
	decide()
	if d := decide(); d.Allowed {
		t.Fatal("3rd: allowed; want denied")
	}
	scripts := func() int64 { return commands(t, c, "evalsha") + commands(t, c, "eval") }
	before := scripts()
	for range 50 {
		d := decide()
		if d.Allowed || d.RetryAfter() <= 0 || d.RetryAfter() > 700*time.Millisecond {
			t.Fatalf("cached denial: got allowed=%v retry-after %v; want denied with a retry-after under the window", d.Allowed, d.RetryAfter())
		}
	}
	if n := scripts() - before; n != 0 {
		t.Fatalf("50 requests over the limit cost %d script calls; want 0 while the deny cache holds", n)
	}
	time.Sleep(800 * time.Millisecond)
	if d := decide(); !d.Allowed {
		t.Fatal("after the window: denied; want allowed (the cache expired with the capacity)")
	}
	if n := scripts() - before; n != 1 {
		t.Fatalf("after expiry: %d script calls; want 1", n)
	}
}

func TestUsageAndReset(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	s, _ := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), true)
	r := limiter.Rule{Name: "r", Limit: 3, Window: time.Minute}
	for range 4 {
		decideOK(t, s, "acme", r)
	}
	u, err := s.Usage(context.Background(), "acme", []limiter.Rule{r})
	if err != nil || len(u) != 1 || u[0].Used != 3 || u[0].Remaining() != 0 || u[0].Reset <= 0 {
		t.Fatalf("Usage: %+v %v; want 3 used, 0 remaining, a reset", u, err)
	}
	if err := s.Reset(context.Background(), "acme", []limiter.Rule{r}); err != nil {
		t.Fatal(err)
	}
	if d := decideOK(t, s, "acme", r); !d.Allowed || d.Rules[0].Remaining != 2 {
		t.Fatalf("after Reset: got %+v; want allowed with 2 left (the deny cache cleared too)", d.States())
	}
}

func TestRedisStoreContractCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.Cluster(t, redistest.ClusterOptions{})
	storetest.Run(t, func(t *testing.T) storetest.Env {
		clk := &offsetClock{}
		s, _ := newRedisStoreAt(t, redisOptions(limiter.ModeCluster, cl.Addrs()...), false, clk.Now)
		awaitSlotMap(t, s)
		return contractEnv(s, clk, contractWindow)
	})
}

// awaitSlotMap waits until a new cluster store decides: its first
// decision waits one budget for the slot map, which a loaded machine can
// take longer to load. The contract is about deciding, not starting.
func awaitSlotMap(t testing.TB, s limiter.Store) {
	t.Helper()
	warm := []limiter.Rule{{Name: "warm", Limit: 1000, Window: time.Second}}
	testkit.Eventually(t, 15*time.Second, func() error {
		_, err := s.Decide(context.Background(), limiter.Request{Tenant: "warm-up", Rules: warm})
		return err
	})
}

// TestClusterKeepsATenantInOneSlot: tenants spread over the primaries, and
// every key of one tenant is on one of them.
func TestClusterKeepsATenantInOneSlot(t *testing.T) {
	t.Parallel()
	cl := redistest.Cluster(t, redistest.ClusterOptions{})
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeCluster, cl.Addrs()...), false)
	rules := []limiter.Rule{{Name: "a", Limit: 5, Window: time.Minute}, {Name: "b", Limit: 5, Window: time.Minute}, {Name: "c", Limit: 5, Window: time.Hour}}
	primaries := map[string]bool{}
	for i := range 12 {
		tenant := fmt.Sprintf("tenant%d", i)
		decideOK(t, s, tenant, rules...)
		owner := cl.PrimaryFor(t, limiter.Key(prefix, tenant, "a")).Addr()
		for _, r := range rules[1:] {
			if got := cl.PrimaryFor(t, limiter.Key(prefix, tenant, r.Name)).Addr(); got != owner {
				t.Fatalf("%s: rule %s on %s, rule a on %s; want one node per tenant", tenant, r.Name, got, owner)
			}
		}
		primaries[owner] = true
	}
	if len(primaries) < 2 {
		t.Fatalf("12 tenants landed on %d primaries; want them spread", len(primaries))
	}
}

// TestSentinelFailoverLimitingContinues: after a failover the store writes
// to the new primary, with its empty script cache, within seconds.
func TestSentinelFailoverLimitingContinues(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3})
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeSentinel, topo.SentinelAddrs()...), false)
	r := limiter.Rule{Name: "r", Limit: 1000, Window: time.Minute}
	decideOK(t, s, "acme", r)
	old := topo.Primary()
	next := topo.Failover(t)
	if next.Addr() == old.Addr() {
		t.Fatalf("failover kept %s as primary", old)
	}
	key := limiter.Key(prefix, "acme", "r")
	nc := next.Client(t)
	before := nc.ZCard(context.Background(), key).Val()
	errs := 0
	testkit.Eventually(t, 10*time.Second, func() error {
		if nc.ZCard(context.Background(), key).Val() > before {
			return nil
		}
		if _, err := s.Decide(context.Background(), limiter.Request{Tenant: "acme", Rules: []limiter.Rule{r}}); err != nil {
			errs++
		}
		return fmt.Errorf("no decision recorded on the new primary %s (%d errors)", next, errs)
	})
	t.Logf("decisions reached the new primary with %d errors on the way", errs)
	for range 20 {
		decideOK(t, s, "acme", r)
	}
	// Replication is asynchronous: the new primary may lack the old one's
	// last records, so an admission whose window reaches back before the
	// failover is not stood behind (seen in the chaos suite: one admission
	// past the limit marked ok after a failover).
	if d := decideOK(t, s, "acme", r); !d.Degraded || d.Why != limiter.WhyRestarted {
		t.Fatalf("a 1-minute window reaching back before the failover: degraded=%v why=%q; want restarted", d.Degraded, d.Why)
	}
}
