package limiter_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
)

// startedThroughReplica connects s, whose sentinels are stalled, and
// makes a first decision, which finds the primary through the local
// replica's ROLE; it returns that decision's request.
func startedThroughReplica(t *testing.T, s *limiter.RedisStore) limiter.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Connect(ctx)
	r := limiter.Rule{Name: "r", Limit: 1000, Window: time.Minute}
	req := limiter.Request{Tenant: "acme", Rules: []limiter.Rule{r}}
	if _, err := s.Decide(context.Background(), req); err != nil {
		t.Fatalf("started with the sentinels unreachable, through the local replica's ROLE: %v", err)
	}
	return req
}

// TestStartedWithSentinelsSilentARedialDoesNotWaitOnThem: a gateway
// started while every sentinel is stalled (connections accepted, nothing
// answered) finds the primary through its local replica's ROLE and keeps
// it: when the primary's connections break, the lanes dial it again at
// once, without first waiting out the sentinels' timeout, which the
// watchdog would charge to Redis (200 ms budget, 1 s dial timeout).
func TestStartedWithSentinelsSilentARedialDoesNotWaitOnThem(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3})
	for _, sn := range topo.Sentinels() {
		sn.Stall()
		t.Cleanup(sn.Resume)
	}
	o := redisOptions(limiter.ModeSentinel, topo.SentinelAddrs()...)
	o.LocalReplicas = []string{topo.Replicas()[0].Addr()}
	clients, err := limiter.NewClients(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clients.Close() })
	s, err := limiter.NewRedisStore(clients, limiter.Options{Consistency: limiter.ConsistencyExact,
		KeyPrefix: fmt.Sprintf("t%d", instances.Add(1)), QueueTimeout: testQueueTimeout},
		200*time.Millisecond, fmt.Sprintf("gw%d", instances.Add(1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	req := startedThroughReplica(t, s)
	killClients(t, topo.Primary()) // the primary itself stays healthy
	for i := range 3 {
		start := time.Now()
		if _, err := s.Decide(context.Background(), req); err != nil {
			t.Fatalf("decision %d after the primary's connections broke (primary healthy, sentinels unreachable): %v after %v; want exact", i+1, err, time.Since(start).Round(time.Millisecond))
		}
	}
}

// TestStartedWithSentinelsSilentTheReplicasNextPrimaryIsFollowed: with
// the sentinels stalled from the start, the primary found through the
// local replica's ROLE is kept, but not forever: when another node is
// made primary and the local replica follows it (as the sentinels' own
// failover would, unseen by this gateway), the decisions follow it too,
// the old primary refusing them by ROLE meanwhile.
func TestStartedWithSentinelsSilentTheReplicasNextPrimaryIsFollowed(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 2, Sentinels: 3})
	old, rs := topo.Primary(), topo.Replicas()
	local, next := rs[0], rs[1]
	for _, sn := range topo.Sentinels() {
		sn.Stall()
		t.Cleanup(sn.Resume)
	}
	o := redisOptions(limiter.ModeSentinel, topo.SentinelAddrs()...)
	o.LocalReplicas = []string{local.Addr()}
	s, prefix := newRedisStore(t, o, false)
	t.Cleanup(s.Close)
	req := startedThroughReplica(t, s)
	bg := context.Background()
	if err := next.Client(t).Do(bg, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(next.Addr())
	for _, n := range []*redistest.Node{local, old} {
		if err := n.Client(t).Do(bg, "REPLICAOF", host, port).Err(); err != nil {
			t.Fatal(err)
		}
	}
	key := limiter.Key(prefix, "acme", "r")
	nc := next.Client(t)
	before := nc.ZCard(bg, key).Val()
	errs := 0
	testkit.Eventually(t, 10*time.Second, func() error {
		if nc.ZCard(bg, key).Val() > before {
			return nil
		}
		if _, err := s.Decide(bg, req); err != nil {
			errs++
		}
		return fmt.Errorf("no decision recorded on the new primary %s (%d errors)", next, errs)
	})
	t.Logf("decisions reached the new primary with %d errors on the way", errs)
}
