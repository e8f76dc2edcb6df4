package limiter_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
)

// configSet sets Redis settings on n, failing the test on error.
func configSet(t *testing.T, n *redistest.Node, kv ...string) {
	t.Helper()
	args := []any{"CONFIG", "SET"}
	for _, s := range kv {
		args = append(args, s)
	}
	if err := n.Client(t).Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("CONFIG SET %v: %v", kv, err)
	}
}

// TestOutOfMemoryIsAFailure: under noeviction at maxmemory, a decision is
// refused before its script writes anything (the OOM check of a script
// declared by its shebang), and the store reports the failure; reads still
// work. Without the shebang, Redis 7 let the script's first write, which
// OOM does not block, through, and every decision went on answering.
func TestOutOfMemoryIsAFailure(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
	r := limiter.Rule{Name: "r", Limit: 5, Window: time.Minute}
	decideOK(t, s, "acme", r)

	full := limiter.Rule{Name: "full", Limit: 1, Window: time.Minute}
	decideOK(t, s, "acme", full)

	configSet(t, srv, "maxmemory-policy", "noeviction", "maxmemory", "1")
	t.Cleanup(func() { configSet(t, srv, "maxmemory", "0") })
	before := refusedWrites(t, srv, s, limiter.Key(prefix, "acme", "r"), r, "OOM")
	if u, err := s.Usage(context.Background(), "acme", []limiter.Rule{r}); err != nil || u[0].Used != before {
		t.Fatalf("Usage under OOM: %v, %v; want %d used (a read runs under OOM)", u, err, before)
	}

	// The read-only peek runs under OOM: a full rule is still denied on
	// the word of the node that refused the write.
	full2 := limiter.Request{Tenant: "acme", Rules: []limiter.Rule{full}}
	if _, denied, err := s.ReplicaDenies(context.Background(), full2, time.Second); err != nil || !denied {
		t.Fatalf("ReplicaDenies of a full rule under OOM: denied=%v err=%v; want denied", denied, err)
	}
	if _, denied, err := s.ReplicaDenies(context.Background(), limiter.Request{Tenant: "other", Rules: []limiter.Rule{full}}, time.Second); err != nil || denied {
		t.Fatalf("ReplicaDenies of an empty rule under OOM: denied=%v err=%v; want not denied", denied, err)
	}

	configSet(t, srv, "maxmemory", "0")
	if d := decideOK(t, s, "acme", r); !d.Allowed {
		t.Fatal("after memory was freed: denied; want allowed")
	}
}

// refusedWrites checks that three decisions of rule for tenant acme fail
// with an error reply starting with want, as calls the breaker counts,
// and that none wrote to key; it returns key's members.
func refusedWrites(t *testing.T, srv *redistest.Node, s *limiter.RedisStore, key string, rule limiter.Rule, want string) int64 {
	t.Helper()
	before := srv.Client(t).ZCard(context.Background(), key).Val()
	for i := range 3 {
		_, err := s.Decide(context.Background(), limiter.Request{Tenant: "acme", Rules: []limiter.Rule{rule}})
		var ce *limiter.CallError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), want) {
			t.Fatalf("decision %d: err %v; want a *limiter.CallError (the breaker counts it) saying %s", i+1, err, want)
		}
	}
	if n := srv.Client(t).ZCard(context.Background(), key).Val(); n != before {
		t.Fatalf("the rule's set went from %d to %d members; want no write", before, n)
	}
	return before
}

// TestNoReplicasIsAFailure: a primary that cannot reach the replicas
// min-replicas-to-write asks for refuses a decision (NOREPLICAS) before it
// writes, as a primary restarted alone does: its writes would not survive
// the failover under way.
func TestNoReplicasIsAFailure(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
	r := limiter.Rule{Name: "r", Limit: 5, Window: time.Minute}
	configSet(t, srv, "min-replicas-to-write", "1")
	refusedWrites(t, srv, s, limiter.Key(prefix, "acme", "r"), r, "NOREPLICAS")
	configSet(t, srv, "min-replicas-to-write", "0")
	if d := decideOK(t, s, "acme", r); !d.Allowed {
		t.Fatal("after min-replicas-to-write 0: denied; want allowed")
	}
}

// TestEvictionMarksDecisionsDegraded: while the primary is at maxmemory
// under a policy that evicts, decisions are marked degraded (evicting);
// once it stops, a rule whose window still reaches back into the eviction
// stays degraded and a short one does not.
func TestEvictionMarksDecisionsDegraded(t *testing.T) {
	t.Parallel()
	srv, s := connectedStandalone(t)

	// 2 MB of keys without a TTL, then maxmemory 500 kB below what is used:
	// allkeys-lru evicts until under it, and every later write may evict.
	c := srv.Client(t)
	filler := strings.Repeat("x", 1024)
	for i := range 2048 {
		c.Set(context.Background(), "filler:"+strconv.Itoa(i), filler, 0)
	}
	used := memoryUsed(t, c)
	configSet(t, srv, "maxmemory-policy", "allkeys-lru", "maxmemory", strconv.FormatInt(used-500<<10, 10))
	t.Cleanup(func() { configSet(t, srv, "maxmemory", "0") })
	testkit.Until(t, 5*time.Second, "a decision marked degraded (evicting) at maxmemory under volatile-lru", func() bool {
		d := decideOK(t, s, "acme", short)
		return d.Degraded && d.Why == limiter.WhyEvicting
	})
	for i := range 20 {
		if d := decideOK(t, s, "acme", long); !d.Degraded || d.Why != limiter.WhyEvicting {
			t.Fatalf("decision %d while evicting: degraded=%v why=%q; want evicting", i+1, d.Degraded, d.Why)
		}
	}
	one := limiter.Rule{Name: "one", Limit: 1, Window: time.Minute}
	decideOK(t, s, "acme", one)
	if d := decideOK(t, s, "acme", one); d.Allowed || d.Degraded {
		t.Fatalf("over the limit while evicting: allowed=%v degraded=%v; want a plain denial (missing records only undercount)", d.Allowed, d.Degraded)
	}

	configSet(t, srv, "maxmemory", "0")
	markedForTheWindow(t, s, limiter.WhyEvicting)
}

// long and short are rules whose windows reach back past a fault (a
// minute) and soon do not (300 ms).
var (
	long  = limiter.Rule{Name: "long", Limit: 1 << 20, Window: time.Minute}
	short = limiter.Rule{Name: "short", Limit: 1 << 20, Window: 300 * time.Millisecond}
)

// connectedStandalone is a Redis server and a connected exact store on
// it, whose first decision is exact.
func connectedStandalone(t *testing.T) (*redistest.Node, *limiter.RedisStore) {
	t.Helper()
	srv := redistest.Server(t)
	s, _ := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Connect(ctx)
	if d := decideOK(t, s, "acme", long); d.Degraded {
		t.Fatalf("healthy: degraded (%s)", d.Why)
	}
	return srv, s
}

// markedForTheWindow waits until a short-window admission is exact again
// after a fault, and checks that a long window, which still reaches back
// into it, is still marked why.
func markedForTheWindow(t *testing.T, s *limiter.RedisStore, why string) {
	t.Helper()
	testkit.Until(t, 5*time.Second, "a short-window admission exact again", func() bool {
		return !decideOK(t, s, "acme", short).Degraded
	})
	if d := decideOK(t, s, "acme", long); !d.Degraded || d.Why != why {
		t.Fatalf("a 1-minute window reaching back into the fault: degraded=%v why=%q; want %s", d.Degraded, d.Why, why)
	}
}

// memoryUsed is the node's used_memory.
func memoryUsed(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("INFO memory has no used_memory")
	return 0
}

// newSentinelStore is an exact store on topo's sentinels, connected, with
// the given local replicas.
func newSentinelStore(t *testing.T, topo *redistest.Topo, local ...string) *limiter.RedisStore {
	t.Helper()
	o := redisOptions(limiter.ModeSentinel, topo.SentinelAddrs()...)
	o.LocalReplicas = local
	s, _ := newRedisStore(t, o, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Connect(ctx)
	t.Cleanup(s.Close)
	return s
}

// killClients closes every client connection of n (CLIENT KILL TYPE
// normal), as a primary restarted in place or a network blip does.
func killClients(t *testing.T, n *redistest.Node) {
	t.Helper()
	if err := n.Client(t).Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
}

// TestSentinelsDownPrimaryHealthy: with every sentinel gone and the
// primary's connections killed, decisions stay exact on the last primary
// the sentinels named; a gateway started in that state finds the primary
// through its local replica's ROLE; the admin API's client (go-redis)
// reaches it too.
func TestSentinelsDownPrimaryHealthy(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3})
	s := newSentinelStore(t, topo)
	r := limiter.Rule{Name: "r", Limit: 1000, Window: time.Minute}
	if d := decideOK(t, s, "acme", r); d.Degraded {
		t.Fatalf("healthy: degraded (%s)", d.Why)
	}
	for _, sn := range topo.Sentinels() {
		sn.Kill()
	}
	killClients(t, topo.Primary())
	time.Sleep(2 * followEveryForTests) // the follow loop finds no sentinel
	for i := range 20 {
		if d := decideOK(t, s, "acme", r); d.Degraded {
			t.Fatalf("decision %d, sentinels down, primary healthy: degraded (%s); want exact", i+1, d.Why)
		}
	}
	if n := limiter.SentinelsReachableOf(s); n != 0 {
		t.Fatalf("SentinelsReachable() = %d with every sentinel down; want 0", n)
	}

	restarted := newSentinelStore(t, topo, topo.Replicas()[0].Addr())
	for i := range 5 {
		if d := decideOK(t, restarted, "acme", r); d.Degraded {
			t.Fatalf("decision %d of a gateway started with the sentinels down: degraded (%s); want exact", i+1, d.Why)
		}
	}
	if u, err := restarted.Usage(context.Background(), "acme", []limiter.Rule{r}); err != nil || u[0].Used != 5 {
		t.Fatalf("Usage with the sentinels down: %v, %v; want 5 used", u, err)
	}
	if err := restarted.Reset(context.Background(), "acme", []limiter.Rule{r}); err != nil {
		t.Fatalf("Reset (on the primary, through go-redis) with the sentinels down: %v", err)
	}
}

// followEveryForTests is the follow loop's period (limiter.followEvery).
const followEveryForTests = 250 * time.Millisecond

// TestRestartedPrimaryIsMarkedForItsWindows: a primary restarted in place
// (no AOF: it lost every record) is seen by its new run_id when the lanes
// dial it again; from the first admission on, those whose window reaches
// back before the restart are marked degraded (restarted), and shorter
// windows are exact again once they have passed. Connections that broke
// without a restart (killed clients, below) mark nothing.
func TestRestartedPrimaryIsMarkedForItsWindows(t *testing.T) {
	t.Parallel()
	srv, s := connectedStandalone(t)
	killClients(t, srv)
	if d := decideOK(t, s, "acme", long); d.Degraded {
		t.Fatalf("after the connections broke, the same process: degraded (%s); want exact", d.Why)
	}
	srv.Kill()
	srv.Restart(t)
	var first limiter.Decision
	testkit.Until(t, 10*time.Second, "an admission after the restart", func() bool {
		d, err := s.Decide(context.Background(), limiter.Request{Tenant: "acme", Rules: []limiter.Rule{long}})
		first = d
		return err == nil
	})
	if !first.Degraded || first.Why != limiter.WhyRestarted {
		t.Fatalf("the first admission after a restart in place: degraded=%v why=%q; want restarted", first.Degraded, first.Why)
	}
	markedForTheWindow(t, s, limiter.WhyRestarted)
}

// tenantOn returns a tenant whose keys the cluster's primary p serves.
func tenantOn(t *testing.T, cl *redistest.ClusterTopo, p *redistest.Node) string {
	t.Helper()
	for i := range 1000 {
		if tenant := "t" + strconv.Itoa(i); cl.PrimaryFor(t, "{"+tenant+"}") == p {
			return tenant
		}
	}
	t.Fatalf("no tenant of 1000 lands on %s", p)
	return ""
}

// TestClusterFailoverIsFollowedPerShard: a Cluster primary killed, the
// tenants of the other shards keep exact decisions throughout (their own
// breakers), and the killed shard's tenants are exact again soon after the
// cluster promotes its replica: the slot map is reloaded within
// clusterReload, not go-redis' 60 s. The promoted replica may lack the
// killed primary's last records (replication is asynchronous): a window
// reaching back before the failover is marked restarted on its shard, and
// on no other.
func TestClusterFailoverIsFollowedPerShard(t *testing.T) {
	t.Parallel()
	// cluster-require-full-coverage no, as the README's production
	// settings say: with Redis' default, every shard answers CLUSTERDOWN
	// while one has no primary.
	cl := redistest.Cluster(t, redistest.ClusterOptions{PartialCoverage: true})
	s, _ := newRedisStore(t, redisOptions(limiter.ModeCluster, cl.Addrs()...), false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Connect(ctx)
	guard, err := degrade.New(s, degrade.Settings{Budget: 200 * time.Millisecond, FailMode: degrade.FailOpen,
		Breaker: degrade.BreakerOptions{Failures: 3, Cooldown: 5 * time.Second}}, degrade.Options{})
	if err != nil {
		t.Fatal(err)
	}
	primaries := cl.Primaries()
	victim, healthy := primaries[0], primaries[1]
	lost, kept := tenantOn(t, cl, victim), tenantOn(t, cl, healthy)
	r := []limiter.Rule{long}
	if s.Shard(lost) == s.Shard(kept) || s.Shard(lost) != victim.Addr() {
		t.Fatalf("shards %q and %q; want the two primaries' addresses", s.Shard(lost), s.Shard(kept))
	}
	replica := replicaOfNode(t, cl, victim)
	promoted := make(chan time.Time, 1)
	go func() {
		for {
			if role, err := replica.Client(t).Do(context.Background(), "ROLE").Slice(); err == nil && role[0] == "master" {
				promoted <- time.Now()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	victim.Kill()
	killed := time.Now()
	var exactAgain time.Time
	var v degrade.Verdict
	for exactAgain.IsZero() {
		if time.Since(killed) > 20*time.Second {
			t.Fatal("the killed shard's tenant not exact again 20 s after its primary was killed")
		}
		if guard.Decide(context.Background(), limiter.Request{Tenant: kept, Rules: r}, &v); v.Degraded {
			_, err := s.Decide(context.Background(), limiter.Request{Tenant: kept, Rules: r})
			t.Fatalf("a tenant of a healthy shard degraded while another shard fails over (now: %v)", err)
		}
		if guard.Decide(context.Background(), limiter.Request{Tenant: lost, Rules: []limiter.Rule{short}}, &v); !v.Degraded {
			exactAgain = time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
	at := <-promoted
	t.Logf("killed → promoted %s; promoted → exact again %s", at.Sub(killed).Round(time.Millisecond), exactAgain.Sub(at).Round(time.Millisecond))
	if d := decideOK(t, s, lost, long); !d.Degraded || d.Why != limiter.WhyRestarted {
		t.Fatalf("a 1-minute window on the promoted replica: degraded=%v why=%q; want restarted", d.Degraded, d.Why)
	}
	if d := decideOK(t, s, kept, long); d.Degraded {
		t.Fatalf("a 1-minute window on the shard that did not fail over: degraded (%s); want exact", d.Why)
	}
}

// TestClusterFailbackWithoutTheReplicasRecordsIsMarked: a master of the
// route's first slot map, a, fails over to its replica b; cut off from b
// (stalled, its replication link killed), a never gets what b admits up to
// the limit. b down, a, b's replica again, takes its slots back (CLUSTER
// FAILOVER TAKEOVER) before any sweep saw it gone: the route meets no new
// master, and a's run_id is the same. The 4th admission of a limit of 3
// must not be answered ok: a was a replica, and was promoted since, so it
// may lack records (restarted). Found in review: it was answered ok.
func TestClusterFailbackWithoutTheReplicasRecordsIsMarked(t *testing.T) {
	t.Parallel()
	cl := redistest.Cluster(t, redistest.ClusterOptions{Primaries: 1})
	s, _ := newRedisStore(t, redisOptions(limiter.ModeCluster, cl.Addrs()...), false)
	limiter.StopClusterSweeps(s) // every change below comes between two sweeps
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Connect(ctx)
	a := cl.Primaries()[0]
	b := replicaOfNode(t, cl, a)
	three := limiter.Rule{Name: "three", Limit: 3, Window: time.Minute}
	decided := func(tenant string) (limiter.Decision, bool) {
		d, err := s.Decide(context.Background(), limiter.Request{Tenant: tenant, Rules: []limiter.Rule{three}})
		return d, err == nil
	}

	cl.Failover(t, b) // in agreement with a: nothing lost yet, a replicates b
	testkit.Until(t, 20*time.Second, "a decision on b, and the slot map naming b", func() bool {
		_, ok := decided("probe") // a MOVED from a, followed to b; the map reloads
		return ok && s.Shard("acme") == b.Addr()
	})
	a.Stall()
	if err := b.Client(t).Do(context.Background(), "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatalf("CLIENT KILL TYPE replica on b: %v", err)
	}
	for i := range 3 {
		if d := decideOK(t, s, "acme", three); !d.Allowed {
			t.Fatalf("admission %d of 3 on b: denied", i+1)
		}
	}
	if d := decideOK(t, s, "acme", three); d.Allowed {
		t.Fatal("b admitted a 4th of a limit of 3")
	}

	// b down; a, back, is b's replica without b's records (its link to
	// b never comes up) for a couple of seconds, as an operator would
	// find it, then takes over.
	b.Kill()
	a.Resume()
	time.Sleep(2 * time.Second)
	c := a.Client(t)
	testkit.Eventually(t, 20*time.Second, func() error {
		if role, err := c.Do(context.Background(), "ROLE").Slice(); err == nil && role[0] == "master" {
			return nil
		}
		return c.Do(context.Background(), "CLUSTER", "FAILOVER", "TAKEOVER").Err()
	})
	var d limiter.Decision
	testkit.Until(t, 20*time.Second, "a decision on a", func() bool {
		var ok bool
		d, ok = decided("acme") // those sent to b fail
		return ok
	})
	if d.Allowed && (!d.Degraded || d.Why != limiter.WhyRestarted) {
		t.Fatalf("the 4th admission of a limit of 3, on a master that took its slots back without its replica's 3: "+
			"allowed, degraded=%v why=%q; want denied, or degraded restarted", d.Degraded, d.Why)
	}
}

// replicaOfNode is the node replicating p, by ROLE.
func replicaOfNode(t *testing.T, cl *redistest.ClusterTopo, p *redistest.Node) *redistest.Node {
	t.Helper()
	info, err := p.Client(t).Do(context.Background(), "ROLE").Slice()
	if err != nil || len(info) < 3 {
		t.Fatalf("ROLE of %s: %v %v", p, info, err)
	}
	replicas, _ := info[2].([]any)
	if len(replicas) == 0 {
		t.Fatalf("%s has no replica", p)
	}
	port, _ := replicas[0].([]any)[1].(string)
	for _, n := range cl.Nodes() {
		if strconv.Itoa(n.Port()) == port {
			return n
		}
	}
	t.Fatalf("no node of the cluster on port %s", port)
	return nil
}

// TestCallDurationIsPerNode: a shard's latency is its own series,
// labelled with the node's role and address.
func TestCallDurationIsPerNode(t *testing.T) {
	t.Parallel()
	srv, _ := connectedStandalone(t)
	var b bytes.Buffer
	metrics.WritePrometheus(&b, false)
	want := `l1gw_redis_call_duration_seconds_count{role="primary",node="` + srv.Addr() + `"}`
	if !strings.Contains(b.String(), want) {
		t.Fatalf("no %s among the metrics", want)
	}
}

// TestIdleStoreReadsMemorySeldom: a store in use reads its primary's
// memory state every 25 ms, so that eviction is noticed within it; one
// that has carried nothing for a second reads it once a second. Every
// gateway reads every primary, and INFO costs an idle node 60–90 µs.
func TestIdleStoreReadsMemorySeldom(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	s := newStoreWith(t, srv.Addr(), testBudget, limiter.Options{})
	r := limiter.Rule{Name: "r", Limit: 1000, Window: time.Minute}
	decideOK(t, s, "acme", r)
	c := srv.Client(t)
	infos := func() int64 { return infoCalls(t, c) }
	time.Sleep(1500 * time.Millisecond) // idle for longer than a second
	infos()
	time.Sleep(2 * time.Second)
	if n := infos(); n > 4 {
		t.Errorf("%d INFO in 2 s from a store idle all along; want about 2, one a second", n)
	}
	// In use: a decision every 100 ms, too often for the watchdog to rest.
	for range 10 {
		decideOK(t, s, "acme", r)
		time.Sleep(100 * time.Millisecond)
	}
	if n := infos(); n < 10 {
		t.Errorf("%d INFO in the second a store was in use; want one every 25 ms, about 40", n)
	}
}

// infoCalls is how many INFO c's node ran since its stats were last
// reset, and resets them. Redis counts a command after running it, so
// this read is not in the count.
func infoCalls(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	stats, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigResetStat(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(stats, "cmdstat_info:calls=")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(after[:strings.IndexByte(after, ',')], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
