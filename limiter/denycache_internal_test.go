package limiter

import (
	"testing"
	"time"
)

func TestDenyCacheHoldsAtMostMaxDenyFor(t *testing.T) {
	c := newDenyCache(16)
	req := Request{Tenant: "acme", Rules: []Rule{{Name: "per_hour", Limit: 1, Window: time.Hour}}}
	d := Decision{N: 1}
	d.Rules[0] = RuleState{Limit: 1, RetryAfter: 50 * time.Minute, Reset: 50 * time.Minute}
	t0 := time.Unix(1_700_000_000, 0)
	c.remember(req, &d, t0)
	got, ok := c.lookup(req, t0.Add(maxDenyFor-time.Millisecond))
	if !ok || got.Allowed || got.RetryAfter() != 50*time.Minute-maxDenyFor+time.Millisecond {
		t.Fatalf("just inside the cap: hit=%v retry=%v; want a hit with the retry-after moved on", ok, got.RetryAfter())
	}
	if _, ok := c.lookup(req, t0.Add(maxDenyFor)); ok {
		t.Fatal("at the cap: still cached; want Redis asked again")
	}
}
