package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

// overloadedVerdict decides nothing: every decision is shed.
type overloadedVerdict struct{}

func (overloadedVerdict) Decide(_ context.Context, _ limiter.Request, v *degrade.Verdict) {
	*v = degrade.Verdict{Overloaded: true}
}

func (overloadedVerdict) Release(limiter.Request, *degrade.Verdict) {}
func (overloadedVerdict) Renew(limiter.Request, *degrade.Verdict)   {}

// TestOverloadIsShedHonestly: a decision the gateway could not send in
// time is a 503 with Retry-After and X-RateLimit-Status: overloaded; the
// request never reaches the upstream and is neither admitted nor degraded.
func TestOverloadIsShedHonestly(t *testing.T) {
	f := newServeFixture(t, overloadedVerdict{}, "bulk-key", "GET", "/shed")
	if code := f.Serve(); code != 503 {
		t.Fatalf("status %d; want 503", code)
	}
	h := &f.Ctx.Response.Header
	for name, want := range map[string]string{
		"Retry-After": "1", "X-Ratelimit-Status": "overloaded", "Content-Type": "application/problem+json",
		"X-Ratelimit-Limit": "", "Ratelimit": "",
	} {
		if got := string(h.Peek(name)); got != want {
			t.Errorf("%s: %q; want %q", name, got, want)
		}
	}
	body := string(f.Ctx.Response.Body())
	if !strings.Contains(body, `"status":503`) || !strings.Contains(body, "overloaded") {
		t.Errorf("body %s; want a 503 problem saying the gateway is overloaded", body)
	}
	if strings.Contains(body, "upstream ok") {
		t.Error("a shed request reached the upstream")
	}
}

// TestGuardOverloadReachesTheClient wires the real Guard over a store that
// sheds (limiter.ErrOverload): the same 503, never a degraded admit.
func TestGuardOverloadReachesTheClient(t *testing.T) {
	g, err := degrade.New(shedStore{}, degrade.Settings{Budget: 10, FailMode: degrade.FailOpen,
		Breaker: degrade.BreakerOptions{Failures: 1, Cooldown: 1}}, degrade.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	f := newServeFixture(t, g, "bulk-key", "GET", "/shed")
	for range 3 { // the breaker (1 failure) would open on a Redis fault: it does not
		if code := f.Serve(); code != 503 {
			t.Fatalf("status %d; want 503", code)
		}
		if got := string(f.Ctx.Response.Header.Peek("X-Ratelimit-Status")); got != "overloaded" {
			t.Fatalf("X-RateLimit-Status %q; want overloaded", got)
		}
	}
	if g.BreakerState() != degrade.Closed {
		t.Fatalf("breaker %v after sheds; want closed", g.BreakerState())
	}
}

// shedStore sheds every decision, as a pipe whose queue is full.
type shedStore struct{}

func (shedStore) Decide(context.Context, limiter.Request) (limiter.Decision, error) {
	return limiter.Decision{}, fmt.Errorf("decide: %w", limiter.ErrOverload)
}

func (shedStore) Shard(string) string { return "" }

func (shedStore) Release(string, limiter.Rule, uint64) {}
func (shedStore) Renew(string, limiter.Rule, uint64)   {}

func (shedStore) ReplicaDenies(context.Context, limiter.Request, time.Duration) (limiter.Decision, bool, error) {
	return limiter.Decision{}, false, nil
}
