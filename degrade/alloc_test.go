//go:build !race

package degrade_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

// TestDegradedDecisionsDoNotAllocate: with the store down, a decision in
// fail mode open, with or without a concurrency limit, and in fail mode
// local, allocates nothing once the tenant's counts exist.
func TestDegradedDecisionsDoNotAllocate(t *testing.T) {
	rate := limiter.Rule{Name: "rate", Limit: 1 << 40, Window: time.Minute}
	lease := limiter.Rule{Name: "concurrency", Limit: 1 << 20, Window: time.Minute, Lease: true}
	for _, tc := range []struct {
		mode  string
		rules []limiter.Rule
	}{
		{degrade.FailOpen, []limiter.Rule{rate}},
		{degrade.FailOpen, []limiter.Rule{rate, lease}},
		{degrade.FailLocal, []limiter.Rule{rate, lease}},
	} {
		g := newGuard(t, &fakeStore{err: errors.New("connection refused")}, settings(tc.mode))
		req := limiter.Request{Tenant: "t", Rules: tc.rules}
		var v degrade.Verdict
		for range 1000 { // the logs grow to their size
			g.Decide(context.Background(), req, &v)
			g.Release(req, &v)
		}
		if n := testing.AllocsPerRun(200, func() {
			g.Decide(context.Background(), req, &v)
			g.Release(req, &v)
		}); n != 0 {
			t.Errorf("%s, %d rules: %.1f allocations per degraded decision; want 0", tc.mode, len(tc.rules), n)
		}
	}
}
