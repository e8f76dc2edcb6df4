package degrade_test

import (
	"errors"
	"testing"
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

// TestConcurrencyHoldsWhileDegraded: with the store down, in fail mode
// open as in local, a concurrency limit of 4 over 2 expected gateways
// holds at 2 requests in flight in this gateway, the rest of the rules
// admitting (open) or scaled (local); a released lease lets the next in.
func TestConcurrencyHoldsWhileDegraded(t *testing.T) {
	for _, mode := range []string{degrade.FailOpen, degrade.FailLocal} {
		t.Run(mode, func(t *testing.T) {
			g := newGuard(t, &fakeStore{err: errors.New("connection refused")}, settings(mode))
			rules := []limiter.Rule{
				{Name: "rate", Limit: 1000, Window: time.Minute},
				{Name: "concurrency", Limit: 4, Window: time.Minute, Lease: true},
			}
			req := limiter.Request{Tenant: "t", Rules: rules}
			var held []degrade.Verdict
			for i := range 2 {
				v := decide(g, req)
				if !v.Allowed || !v.Degraded || !v.HoldsLeases() {
					t.Fatalf("request %d: %+v; want admitted, degraded, holding a lease", i+1, v)
				}
				held = append(held, v)
			}
			v := decide(g, req)
			if v.Allowed || v.HoldsLeases() {
				t.Fatalf("3rd in flight: %+v; want denied: 4 / 2 gateways", v)
			}
			if st := v.Decision.Rules[1]; !st.Denied() || st.RetryAfter != limiter.RetryLease || v.Decision.RetryAfter() != limiter.RetryLease {
				t.Fatalf("3rd in flight: concurrency state %+v; want denied with Retry-After %v", st, limiter.RetryLease)
			}
			if mode == degrade.FailOpen && !v.Decision.Rules[0].Undecided {
				t.Fatalf("fail open: rate rule state %+v; want Undecided", v.Decision.Rules[0])
			}
			g.Release(req, &held[0])
			if held[0].HoldsLeases() {
				t.Fatal("a released verdict still holds leases")
			}
			g.Release(req, &held[0]) // a second release gives nothing back twice
			if v := decide(g, req); !v.Allowed {
				t.Fatalf("after a release: %+v; want admitted", v)
			}
			if v := decide(g, req); v.Allowed {
				t.Fatal("3rd in flight after one release and one new: admitted; want denied")
			}
		})
	}
}

// TestLeasesOnlyUnderAConcurrencyLimit: an admission holds leases only
// for rules with a concurrency limit, from the store as from the fallback:
// the request path has nothing to give back for the others.
func TestLeasesOnlyUnderAConcurrencyLimit(t *testing.T) {
	rate := limiter.Rule{Name: "rate", Limit: 5, Window: time.Minute}
	lease := limiter.Rule{Name: "concurrency", Limit: 5, Window: time.Minute, Lease: true}
	for _, store := range []*fakeStore{{}, {err: errors.New("connection refused")}} {
		g := newGuard(t, store, settings(degrade.FailOpen))
		if v := decide(g, limiter.Request{Tenant: "t", Rules: []limiter.Rule{rate}}); !v.Allowed || v.HoldsLeases() {
			t.Fatalf("store err %v, a rate rule alone: %+v; want admitted, holding nothing", store.err, v)
		}
		if v := decide(g, limiter.Request{Tenant: "t", Rules: []limiter.Rule{rate, lease}}); !v.Allowed || !v.HoldsLeases() {
			t.Fatalf("store err %v, with a concurrency limit: %+v; want admitted, holding its lease", store.err, v)
		}
	}
}

// TestALocalRenewalKeepsTheLocalShare: Redis down, a concurrency limit
// of 4 over 2 expected gateways is 2 in this gateway's memory. Two
// tunnels hold both local slots; one's lease leaves its window unrenewed
// (a stall), a newcomer takes the slot; the late renewal must not take
// the lease back over the local share of 2. (Found in review: the
// renewal judged room by the unscaled limit.)
func TestALocalRenewalKeepsTheLocalShare(t *testing.T) {
	for _, mode := range []string{degrade.FailOpen, degrade.FailLocal} {
		t.Run(mode, func(t *testing.T) {
			g := newGuard(t, &fakeStore{err: errors.New("connection refused")}, settings(mode))
			window := time.Second // wide: b must outlive the steps after its renewal on a busy machine
			req := limiter.Request{Tenant: "t", Rules: []limiter.Rule{{Name: "concurrency", Limit: 4, Window: window, Lease: true}}}
			a, b := decide(g, req), decide(g, req)
			if !a.Allowed || !b.Allowed || !a.HoldsLeases() {
				t.Fatal("the first two: not admitted with local leases")
			}
			time.Sleep(window / 2)
			g.Renew(req, &b) // b renewed in time
			time.Sleep(window/2 + 50*time.Millisecond)
			// a's lease left its window: a newcomer takes its slot.
			c := decide(g, req)
			if !c.Allowed {
				t.Fatal("a newcomer after a's lease left: denied")
			}
			g.Renew(req, &a) // a's late renewal
			if d := decide(g, req); d.Allowed {
				t.Fatal("a 4th request: admitted")
			}
			// With b and c held, the local share (2) was full when a's
			// renewal came: it must have taken nothing. Give c back: one
			// slot is free, unless a was taken back over the share.
			g.Release(req, &c)
			if v := decide(g, req); !v.Allowed {
				t.Fatal("after c's release, b alone held under a local share of 2: denied; a's late renewal took its lease back over the share (judged by the unscaled limit 4)")
			}
		})
	}
}
