package degrade_test

import (
	"errors"
	"testing"
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

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
