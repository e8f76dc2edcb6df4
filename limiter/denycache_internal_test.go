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
	got, ok := c.get(req, t0.Add(maxDenyFor-time.Millisecond))
	if !ok || got.Allowed || got.RetryAfter() != 50*time.Minute-maxDenyFor+time.Millisecond {
		t.Fatalf("just inside the cap: hit=%v retry=%v; want a hit with the retry-after moved on", ok, got.RetryAfter())
	}
	if _, ok := c.get(req, t0.Add(maxDenyFor)); ok {
		t.Fatal("at the cap: still cached; want Redis asked again")
	}
}

// TestDenyCacheShadowRules: only an enforced rule's denial is cached, for
// as long as that rule is full; a shadow rule's would-be denial is never
// cached, and in a cached denial it lasts only as long as it would.
func TestDenyCacheShadowRules(t *testing.T) {
	c := newDenyCache(16)
	t0 := time.Unix(1_700_000_000, 0)
	req := Request{Tenant: "acme", Rules: []Rule{{Name: "r", Limit: 1, Window: time.Minute},
		{Name: "trial", Limit: 1, Window: time.Hour, Mode: RuleShadow}}}
	d := Decision{Allowed: true, N: 2}
	d.Rules[1] = RuleState{Limit: 1, RetryAfter: time.Hour, Shadow: true}
	c.remember(req, &d, t0)
	if _, ok := c.get(req, t0.Add(time.Millisecond)); ok {
		t.Fatal("an admission a shadow rule would have denied: cached; want nothing cached")
	}
	d.Allowed = false
	d.Rules[0] = RuleState{Limit: 1, RetryAfter: 2 * time.Second}
	d.Rules[1].RetryAfter = time.Second
	c.remember(req, &d, t0)
	got, ok := c.get(req, t0.Add(500*time.Millisecond))
	if !ok || got.RetryAfter() != 1500*time.Millisecond || !got.ShadowDenied() {
		t.Fatalf("at 0.5s: hit=%v retry=%v shadow-denied=%v; want a hit, 1.5s (the enforced rule's), shadow-denied", ok, got.RetryAfter(), got.ShadowDenied())
	}
	got, ok = c.get(req, t0.Add(1500*time.Millisecond))
	if !ok || got.Allowed || got.ShadowDenied() {
		t.Fatalf("at 1.5s: hit=%v allowed=%v shadow-denied=%v; want a cached denial, the shadow rule no longer over", ok, got.Allowed, got.ShadowDenied())
	}
	if _, ok := c.get(req, t0.Add(2*time.Second)); ok {
		t.Fatal("at 2s: still cached; want the entry gone with the enforced rule's retry-after")
	}
}

// get is lookup returning the denial.
func (c *denyCache) get(req Request, now time.Time) (Decision, bool) {
	var d Decision
	ok := c.lookup(req, now, &d)
	return d, ok
}
