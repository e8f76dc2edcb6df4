package limiter_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
)

// splitTenant is a tenant whose keys are on another primary than
// scope's, so the slots differ as well (asserted).
func splitTenant(t testing.TB, cl *redistest.ClusterTopo, prefix, scope string) (tenant string, own, shared *redistest.Node) {
	t.Helper()
	shared = cl.PrimaryFor(t, limiter.Key(prefix, scope, "x"))
	for i := range 50 {
		tenant = "acme" + strconv.Itoa(i)
		if own = cl.PrimaryFor(t, limiter.Key(prefix, tenant, "x")); own.Addr() != shared.Addr() {
			break
		}
	}
	ctx := context.Background()
	a := own.Client(t).ClusterKeySlot(ctx, limiter.Key(prefix, tenant, "x")).Val()
	b := own.Client(t).ClusterKeySlot(ctx, limiter.Key(prefix, scope, "x")).Val()
	if own.Addr() == shared.Addr() || a == b {
		t.Fatalf("tenant %s and scope %s: slots %d and %d on %s and %s; want two primaries", tenant, scope, a, b, own, shared)
	}
	return tenant, own, shared
}

// undoCount is l1gw_cluster_undo_total{result}.
func undoCount(t *testing.T, result string) int {
	t.Helper()
	return resultCount(t, "l1gw_cluster_undo_total", result)
}

// TestClusterSharedLimits runs the Cluster cases of shared limits on one
// cluster.
func TestClusterSharedLimits(t *testing.T) {
	t.Parallel()
	cl := redistest.Cluster(t, redistest.ClusterOptions{})
	t.Run("SecondCallUndone", func(t *testing.T) { sharedLimitIsASecondCall(t, cl) })
	t.Run("ThreeRunsUndoARouteLease", func(t *testing.T) { threeRunsUndoARouteLease(t, cl) })
	t.Run("OnlySharedGoesToItsSlot", func(t *testing.T) { onlySharedGoesToItsSlot(t, cl) })
}

// onlySharedGoesToItsSlot: a request whose rules are all one scope's (a
// tenant with no rules of its own behind a route limit) is one call, sent
// to the scope's primary: no MOVED reply from the tenant's.
func onlySharedGoesToItsSlot(t *testing.T, cl *redistest.ClusterTopo) {
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeCluster, cl.Addrs()...), false)
	awaitSlotMap(t, s)
	scope := "route:search"
	tenant, _, _ := splitTenant(t, cl, prefix, scope)
	shared := limiter.Rule{Name: "r", Limit: 1000, Window: time.Minute, Scope: scope}
	before := movedReplies(t, cl)
	for range 10 {
		decideOK(t, s, tenant, shared)
	}
	if n := movedReplies(t, cl) - before; n != 0 {
		t.Fatalf("%d MOVED replies for 10 decisions of a scope's rules alone; want 0, each sent to the scope's slot", n)
	}
}

// movedReplies is how many MOVED errors the cluster's primaries have
// answered (INFO errorstats).
func movedReplies(t *testing.T, cl *redistest.ClusterTopo) int {
	t.Helper()
	n := 0
	for _, p := range cl.Primaries() {
		for _, line := range strings.Split(p.Client(t).Info(context.Background(), "errorstats").Val(), "\r\n") {
			if v, ok := strings.CutPrefix(line, "errorstat_MOVED:count="); ok {
				c, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("errorstats line %q: %v", line, err)
				}
				n += c
			}
		}
	}
	return n
}

// sharedLimitIsASecondCall: on Redis Cluster a request with a shared
// limit whose slot is not the tenant's is decided in two calls; when the
// second refuses, the first's record is taken back from the tenant's
// primary, and when the first refuses, the second is not made.
func sharedLimitIsASecondCall(t *testing.T, cl *redistest.ClusterTopo) {
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeCluster, cl.Addrs()...), false)
	awaitSlotMap(t, s)
	scope := "upstream:orders"
	tenant, ownNode, sharedNode := splitTenant(t, cl, prefix, scope)
	own := limiter.Rule{Name: "own", Limit: 1, Window: time.Minute}
	window := limiter.Rule{Name: "burst", Limit: 1, Window: time.Hour, Algorithm: limiter.AlgoSlidingWindow}
	shared := limiter.Rule{Name: "upstream_rate", Limit: 1, Window: time.Minute, Scope: scope}
	ctx := context.Background()
	decideOK(t, s, "other", shared) // the shared limit is full

	undone := undoCount(t, "undone")
	d := decideOK(t, s, tenant, own, window, shared)
	if d.Allowed || !d.Rules[2].Denied() || d.Rules[0].Remaining != 1 || d.Rules[1].Remaining != 1 {
		t.Fatalf("refused by the shared limit: %+v; want denied by it, 1 left in the own rules", d.States())
	}
	if n := ownNode.Client(t).ZCard(ctx, limiter.Key(prefix, tenant, own.Name)).Val(); n != 0 {
		t.Fatalf("own sliding log on %s after the undo: %d members; want 0", ownNode, n)
	}
	if c := ownNode.Client(t).HGet(ctx, limiter.Key(prefix, tenant, window.Name)+":sw", "c").Val(); c != "0" {
		t.Fatalf("own sliding window's count on %s after the undo: %q; want 0", ownNode, c)
	}
	if got := undoCount(t, "undone"); got <= undone {
		t.Fatalf("l1gw_cluster_undo_total{result=\"undone\"}: %d, was %d; want it counted", got, undone)
	}

	decideOK(t, s, tenant, own) // fills the own rule
	before := sharedNode.Client(t).ZRange(ctx, limiter.Key(prefix, scope, shared.Name), 0, -1).Val()
	d = decideOK(t, s, tenant, own, shared)
	if d.Allowed || !d.Rules[0].Denied() || !d.Rules[1].Undecided {
		t.Fatalf("refused by the own rule: %+v; want denied by it, the shared limit not asked", d.States())
	}
	after := sharedNode.Client(t).ZRange(ctx, limiter.Key(prefix, scope, shared.Name), 0, -1).Val()
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("shared log on %s: %v, was %v; want it untouched", sharedNode, after, before)
	}

	// The admin API's reads and resets take the rules of each slot apart.
	testkit.Eventually(t, 5*time.Second, func() error {
		u, err := s.Usage(ctx, tenant, []limiter.Rule{own, shared})
		if err != nil || len(u) != 2 || u[0].Used != 1 || u[1].Used != 1 {
			return fmt.Errorf("Usage: %+v, %v; want 1 used in each", u, err)
		}
		return nil
	})
	if err := s.Reset(ctx, tenant, []limiter.Rule{own, shared}); err != nil {
		t.Fatalf("Reset of rules in two slots: %v", err)
	}
	if d := decideOK(t, s, tenant, own, shared); !d.Allowed {
		t.Fatalf("after Reset: %+v; want admitted", d.States())
	}
}

// threeRunsUndoARouteLease: a request of a tenant's rule, a
// route's concurrency limit and an upstream's limit is three calls; when
// the upstream's refuses, the route's lease is given back with the
// tenant's record, and an admitted request's lease is released in the
// route's set by its one Seq.
func threeRunsUndoARouteLease(t *testing.T, cl *redistest.ClusterTopo) {
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeCluster, cl.Addrs()...), false)
	awaitSlotMap(t, s)
	own := limiter.Rule{Name: "own", Limit: 5, Window: time.Minute}
	lease := limiter.Rule{Name: "route_concurrency", Limit: 1, Window: time.Minute, Lease: true, Scope: "route:r"}
	upstream := limiter.Rule{Name: "total", Limit: 1, Window: time.Minute, Scope: "upstream:api"}
	ctx := context.Background()
	leaseKey := limiter.LeaseKey(prefix, lease.Scope, lease.Name)
	routeNode := cl.PrimaryFor(t, leaseKey)
	slots := map[int64]bool{}
	for _, tag := range []string{"acme", lease.Scope, upstream.Scope} {
		slots[routeNode.Client(t).ClusterKeySlot(ctx, limiter.Key(prefix, tag, "x")).Val()] = true
	}
	if len(slots) != 3 {
		t.Fatalf("the tenant, the route and the upstream in %d slots; want 3", len(slots))
	}

	d := decideOK(t, s, "acme", own, lease, upstream)
	if !d.Allowed || d.Seq == 0 || d.Rules[1].Remaining != 0 || d.Rules[2].Remaining != 0 {
		t.Fatalf("first: %+v; want admitted over three calls, the lease and the upstream's room taken", d.States())
	}
	s.Release("acme", lease, d.Seq)
	testkit.Eventually(t, 3*time.Second, func() error {
		if n := routeNode.Client(t).ZCard(ctx, leaseKey).Val(); n != 0 {
			return fmt.Errorf("route lease set on %s: %d held after Release; want 0", routeNode, n)
		}
		return nil
	})

	d = decideOK(t, s, "acme", own, lease, upstream) // the upstream's limit is full
	if d.Allowed || !d.Rules[2].Denied() || d.Rules[0].Remaining != 4 || d.Rules[1].Remaining != 1 {
		t.Fatalf("refused by the upstream: %+v; want denied by it, 4 left of own, the lease free", d.States())
	}
	if n := routeNode.Client(t).ZCard(ctx, leaseKey).Val(); n != 0 {
		t.Fatalf("route lease set on %s after the undo: %d held; want 0", routeNode, n)
	}
}

// BenchmarkClusterSharedLimit is one decision on a 3-primary cluster on
// loopback for a tenant's own rule alone (one call), with a shared limit
// in another slot (two calls), and with a shared limit that refuses (two
// calls and the undo), reporting the script calls each costs.
func BenchmarkClusterSharedLimit(b *testing.B) {
	cl := redistest.Cluster(b, redistest.ClusterOptions{})
	s, prefix := newRedisStore(b, redisOptions(limiter.ModeCluster, cl.Addrs()...), false)
	awaitSlotMap(b, s)
	scope := "upstream:orders"
	tenant, _, _ := splitTenant(b, cl, prefix, scope)
	own := limiter.Rule{Name: "own", Limit: 1 << 40, Window: time.Minute}
	shared := limiter.Rule{Name: "upstream_rate", Limit: 1 << 40, Window: time.Minute, Scope: scope}
	full := limiter.Rule{Name: "full", Limit: 1, Window: time.Hour, Scope: scope}
	decideOK(b, s, "other", full)
	for _, tc := range []struct {
		name  string
		rules []limiter.Rule
	}{
		{"tenant-only", []limiter.Rule{own}},
		{"shared/admitted", []limiter.Rule{own, shared}},
		{"shared/refused", []limiter.Rule{own, full}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := limiter.Request{Tenant: tenant, Rules: tc.rules}
			ctx := context.Background()
			s.Decide(ctx, req) // load the scripts
			scripts0 := clusterScripts(b, cl)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Decide(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(clusterScripts(b, cl)-scripts0)/float64(b.N), "round-trips/op")
		})
	}
}

// clusterScripts is the script calls every primary of cl counted.
func clusterScripts(b *testing.B, cl *redistest.ClusterTopo) int64 {
	var n int64
	for _, p := range cl.Primaries() {
		_, scripts := totalCommands(b, p.Client(b))
		n += scripts
	}
	return n
}
