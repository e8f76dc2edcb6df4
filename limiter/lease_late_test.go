package limiter_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
)

// TestALeaseAdmittedPastItsBudgetIsGivenBack: Redis stalls past the
// budget while a concurrency-limited decision is on the wire; the guard
// falls back (open: a local lease), and the request ends. Redis runs the
// script once it resumes, recording a lease: the late reply gives it
// back. It held the tenant's only slot with nothing in flight until the
// lease's window passed (found in review).
func TestALeaseAdmittedPastItsBudgetIsGivenBack(t *testing.T) {
	srv := redistest.Server(t)
	clients, err := limiter.NewClients(redisOptions(limiter.ModeStandalone, srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clients.Close() })
	prefix := fmt.Sprintf("t%d", instances.Add(1))
	s, err := limiter.NewRedisStore(clients, limiter.Options{Consistency: limiter.ConsistencyExact, KeyPrefix: prefix,
		QueueTimeout: testQueueTimeout}, 100*time.Millisecond, fmt.Sprintf("gw%d", instances.Add(1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); s.Run(ctx) }() // writes the releases
	t.Cleanup(func() { stop(); <-ran })
	g, err := degrade.New(s, degrade.Settings{Budget: 100 * time.Millisecond, FailMode: degrade.FailOpen,
		ExpectedGateways: 1, Breaker: degrade.BreakerOptions{Failures: 100, Cooldown: 100 * time.Millisecond}}, degrade.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lease := limiter.Rule{Name: "concurrency", Limit: 1, Window: time.Minute, Lease: true}
	req := limiter.Request{Tenant: "acme", Rules: []limiter.Rule{lease}}
	key := limiter.LeaseKey(prefix, "acme", "concurrency")

	var v degrade.Verdict
	g.Decide(context.Background(), req, &v) // the connection is up
	if !v.Allowed || v.Degraded {
		t.Fatalf("healthy: allowed=%v degraded=%v; want admitted", v.Allowed, v.Degraded)
	}
	g.Release(req, &v)
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := srv.Client(t).ZCard(context.Background(), key).Val(); n != 0 {
			return fmt.Errorf("%d leases after the release", n)
		}
		return nil
	})
	srv.Stall()
	g.Decide(context.Background(), req, &v)
	if !v.Allowed || !v.Degraded || !v.HoldsLeases() {
		srv.Resume()
		t.Fatalf("stalled: allowed=%v degraded=%v; want admitted, degraded, with a local lease", v.Allowed, v.Degraded)
	}
	g.Release(req, &v) // the request ends
	srv.Resume()
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := srv.Client(t).ZCard(context.Background(), key).Val(); n != 0 {
			return fmt.Errorf("%s holds %d leases with nothing in flight; want 0", key, n)
		}
		return nil
	})
	var w degrade.Verdict
	g.Decide(context.Background(), req, &w)
	if !w.Allowed || w.Degraded {
		t.Fatalf("Redis healthy, nothing in flight: allowed=%v degraded=%v; want admitted", w.Allowed, w.Degraded)
	}
}
