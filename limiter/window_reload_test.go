package limiter_test

import (
	"context"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/limiter"
)

// TestSlidingWindowCountSlidesOutWhileGatewaysDisagreeOnTheWindow: two
// gateways mid-reload, one with the old window (w), one with the new
// (2w), share a tenant's sliding-window hash. The tenant fills the rule
// at t0, then only retries: every retry is denied and records nothing.
// Whatever window either gateway counts by, what was counted at t0 has
// left both windows by t0 + 2 x 2w, so a retry must be admitted by then.
// Each call converts the hash to its own window (a denied call writes it
// back too): a conversion that put the whole count in the bucket of now
// re-dated it on every call, and it never slid out (a review).
func TestSlidingWindowCountSlidesOutWhileGatewaysDisagreeOnTheWindow(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	s, _ := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
	const w = 200 * time.Millisecond
	old := limiter.Rule{Name: "burst", Limit: 100, Cost: 100, Window: w, Algorithm: limiter.AlgoSlidingWindow}
	wider := old
	wider.Window = 2 * w
	if d := decideOK(t, s, "pp", old); !d.Allowed {
		t.Fatal("the first request: denied; want allowed")
	}
	t0 := time.Now()
	for i := 0; time.Since(t0) < 10*w; i++ { // 2.5 x the time everything counted needs to leave
		r := old
		if i%2 == 1 {
			r = wider
		}
		if d := decideOK(t, s, "pp", r); d.Allowed {
			if e := time.Since(t0); e > 2*wider.Window+w {
				t.Fatalf("admitted only after %v; want by %v", e, 2*wider.Window)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("denied for %v (%v after everything counted at t0 left both windows), by gateways alternating windows %v and %v; want admitted by %v", 10*w, 10*w-2*wider.Window, w, 2*w, 2*wider.Window)
}

// TestMemoryUsageDoesNotChangeTheNextDecision: Usage "reads each rule's
// state without recording", as usage.lua does (a no-writes script). On
// the memory store it rolled the state, and a roll by another window
// converts it: a /usage or /v1/simulate read between a reload that
// widened a window and the next request dated the count at the read, so
// the request was denied where it is admitted without the read, and where
// decide.lua (whose hash usage.lua never rewrites) admits it (a review).
func TestMemoryUsageDoesNotChangeTheNextDecision(t *testing.T) {
	base := time.Unix(1_700_000_000, 0) // on a 1 s and a 2 s bucket boundary
	narrow := limiter.Rule{Name: "r", Limit: 100, Cost: 100, Window: time.Second, Algorithm: limiter.AlgoSlidingWindow}
	wide := narrow
	wide.Window = 2 * time.Second
	run := func(read bool) bool {
		now := base.Add(100 * time.Millisecond)
		s := limiter.NewMemoryStore(func() time.Time { return now })
		ctx := context.Background()
		if d, _ := s.Decide(ctx, limiter.Request{Tenant: "t", Rules: []limiter.Rule{narrow}}); !d.Allowed {
			t.Fatal("the first request: denied; want allowed")
		}
		now = base.Add(200 * time.Millisecond) // the reload to 2 s
		if read {
			if _, err := s.Usage(ctx, "t", []limiter.Rule{wide}); err != nil {
				t.Fatal(err)
			}
		}
		now = base.Add(2100 * time.Millisecond) // two 1 s buckets on: the count is out of the 1 s window
		d, _ := s.Decide(ctx, limiter.Request{Tenant: "t", Rules: []limiter.Rule{wide}})
		return d.Allowed
	}
	without, with := run(false), run(true)
	if with != without {
		t.Fatalf("the request 2.1 s on: allowed=%v after a Usage read at 0.2 s, allowed=%v without; want the same (Usage only reads; usage.lua writes nothing)", with, without)
	}
}
