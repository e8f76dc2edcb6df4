package limiter_test

import (
	"context"
	"testing"
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/limiter"
)

// denyCacheGuard is a guard over a store with the deny cache on, whose
// Redis is stalled, and two tenants: hog, whose denial is in the cache,
// and acme, with room.
func denyCacheGuard(t *testing.T, failures int) (*degrade.Guard, limiter.Request, limiter.Request) {
	t.Helper()
	srv := redistest.Server(t)
	s := newStoreWith(t, srv.Addr(), 100*time.Millisecond, limiter.Options{DenyCache: true})
	g, err := degrade.New(s, degrade.Settings{Budget: 100 * time.Millisecond, FailMode: degrade.FailClosed,
		Breaker: degrade.BreakerOptions{Failures: failures, Cooldown: 200 * time.Millisecond, MaxCooldown: 200 * time.Millisecond}},
		degrade.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hog := limiter.Request{Tenant: "hog", Rules: []limiter.Rule{{Name: "r", Limit: 1, Window: time.Minute}}}
	acme := limiter.Request{Tenant: "acme", Rules: []limiter.Rule{{Name: "r", Limit: 1000, Window: time.Minute}}}
	var v degrade.Verdict
	g.Decide(context.Background(), hog, &v)
	g.Decide(context.Background(), hog, &v) // denied by Redis: remembered
	if v.Allowed || v.Degraded {
		t.Fatalf("hog's second request: allowed=%v degraded=%v; want a plain denial", v.Allowed, v.Degraded)
	}
	srv.Stall()
	t.Cleanup(srv.Resume)
	return g, hog, acme
}

// TestADenyCacheAnswerDoesNotCloseTheBreaker: the half-open probe taken
// by a request the deny cache answers says nothing of Redis; the breaker
// stays open while Redis is silent (it closed, found in review).
func TestADenyCacheAnswerDoesNotCloseTheBreaker(t *testing.T) {
	t.Parallel()
	g, hog, acme := denyCacheGuard(t, 2)
	var v degrade.Verdict
	for range 2 {
		g.Decide(context.Background(), acme, &v)
	}
	if st := g.BreakerState(); st != degrade.Open {
		t.Fatalf("after 2 budget misses: breaker %v; want open", st)
	}
	time.Sleep(300 * time.Millisecond) // past the cooldown: the next call probes
	g.Decide(context.Background(), hog, &v)
	if st := g.BreakerState(); st == degrade.Closed {
		t.Fatalf("Redis still stalled, a probe answered from the deny cache: breaker %v; want it not closed", st)
	}
}

// TestDenyCacheAnswersDoNotResetTheBreakersCount: answers from the deny
// cache between budget misses do not count as Redis answering, so the
// misses open the breaker (they reset its count, found in review).
func TestDenyCacheAnswersDoNotResetTheBreakersCount(t *testing.T) {
	t.Parallel()
	g, hog, acme := denyCacheGuard(t, 2)
	var v degrade.Verdict
	for range 4 {
		g.Decide(context.Background(), acme, &v) // a budget miss
		g.Decide(context.Background(), hog, &v)  // the deny cache
	}
	if st := g.BreakerState(); st != degrade.Open {
		t.Fatalf("4 budget misses on a stalled Redis (2 open the breaker), between deny-cache answers: breaker %v; want open", st)
	}
}
