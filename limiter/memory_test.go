package limiter_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/limiter/storetest"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestMemoryStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Env {
		clk := newFakeClock()
		return storetest.Env{Store: limiter.NewMemoryStore(clk.Now), Wait: clk.Advance, Now: clk.Now, Calendar: clk}
	})
}

func TestMemoryStoreRetryAfterIsExact(t *testing.T) {
	clk := newFakeClock()
	s := limiter.NewMemoryStore(clk.Now)
	r := limiter.Rule{Name: "r", Limit: 2, Window: 10 * time.Second}
	req := limiter.Request{Tenant: "t", Rules: []limiter.Rule{r}}
	ctx := context.Background()
	s.Decide(ctx, req)
	clk.Advance(3 * time.Second)
	s.Decide(ctx, req)
	clk.Advance(1 * time.Second)
	d, _ := s.Decide(ctx, req)
	if d.Allowed {
		t.Fatal("3rd request: allowed; want denied")
	}
	// The first request (t=0) leaves the window at t=10s; now is t=4s.
	if got, want := d.Rules[0].RetryAfter, 6*time.Second; got != want {
		t.Fatalf("retry-after: got %v; want %v", got, want)
	}
	if got, want := d.Rules[0].Reset, 6*time.Second; got != want {
		t.Fatalf("reset: got %v; want %v", got, want)
	}
	clk.Advance(6*time.Second - time.Nanosecond)
	if d, _ := s.Decide(ctx, req); d.Allowed {
		t.Fatal("1ns before retry-after: allowed; want denied")
	}
	clk.Advance(time.Nanosecond)
	if d, _ := s.Decide(ctx, req); !d.Allowed {
		t.Fatal("at retry-after: denied; want allowed")
	}
}

func TestMemoryStoreDropsIdleTenants(t *testing.T) {
	clk := newFakeClock()
	s := limiter.NewMemoryStore(clk.Now)
	r := limiter.Rule{Name: "r", Limit: 1, Window: time.Second}
	ctx := context.Background()
	if d, _ := s.Decide(ctx, limiter.Request{Tenant: "idle", Rules: []limiter.Rule{r}}); !d.Allowed {
		t.Fatal("first request denied")
	}
	if n := limiter.MemoryTenants(s); n != 1 {
		t.Fatalf("tenants tracked: got %d; want 1", n)
	}
	clk.Advance(time.Minute)
	// Any request to the same shard sweeps it; tenant "idle" shares its
	// shard with itself, so decide for it again after the sweep interval
	// under another rule set and check the old rule state is gone.
	for i := 0; i < 200; i++ {
		s.Decide(ctx, limiter.Request{Tenant: "other" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Rules: []limiter.Rule{r}})
	}
	if n := limiter.MemoryTenants(s); n > 200 {
		t.Fatalf("tenants tracked after sweep: got %d; want at most 200 (idle tenant dropped)", n)
	}
}

// TestSlidingLogRetryAfterNearTheTopOfInt64: a sliding log's Retry-After
// for a request past a limit of 2^63-1 is when it fits, not sooner. Its
// count less what the oldest entries free, plus the cost, wrapped round
// to a negative that "fit" at the first entry.
func TestSlidingLogRetryAfterNearTheTopOfInt64(t *testing.T) {
	clk := newFakeClock()
	s := limiter.NewMemoryStore(clk.Now)
	ctx := context.Background()
	r := limiter.Rule{Name: "log", Limit: math.MaxInt64, Window: time.Hour, Algorithm: limiter.AlgoSlidingLog}
	decide := func(cost int64) limiter.Decision {
		t.Helper()
		r := r
		r.Cost = cost
		d, err := s.Decide(ctx, limiter.Request{Tenant: "t", Rules: []limiter.Rule{r}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if !decide(1).Allowed {
		t.Fatal("the first request, of cost 1, denied")
	}
	clk.Advance(time.Minute)
	for i := range 1023 { // 1 + 1023 x 2^53 fits under 2^63-1
		if !decide(limiter.MaxCost).Allowed {
			t.Fatalf("request %d of cost 2^53 denied", i+2)
		}
	}
	clk.Advance(time.Second)
	d := decide(limiter.MaxCost)
	if d.Allowed {
		t.Fatal("1 + 1024 x 2^53 admitted under 2^63-1")
	}
	// The first entry leaving frees 1, not enough: the request fits when
	// the second (a minute later) leaves, an hour after it was counted.
	if got, want := d.RetryAfter(), time.Hour-time.Second; got != want {
		t.Fatalf("Retry-After %v; want %v (when the second entry leaves)", got, want)
	}
}

// TestMemoryStoreNoOverflowNearTheLimit: with an "unlimited" limit of
// 2^63-1 and a cost of 2^53, the count reaches the limit after 1023
// requests and the next is denied: a count plus a cost past int64 must
// not wrap round to a negative that admits everything.
func TestMemoryStoreNoOverflowNearTheLimit(t *testing.T) {
	clk := newFakeClock()
	s := limiter.NewMemoryStore(clk.Now)
	ctx := context.Background()
	for _, algo := range []string{limiter.AlgoFixed, limiter.AlgoSlidingWindow} {
		r := limiter.Rule{Name: "r_" + algo, Limit: math.MaxInt64, Cost: limiter.MaxCost, Algorithm: algo}
		if algo == limiter.AlgoFixed {
			r.Period = limiter.PeriodMonth
		} else {
			r.Window = time.Hour
		}
		admitted := 0
		for range 1100 {
			if d, err := s.Decide(ctx, limiter.Request{Tenant: "t", Rules: []limiter.Rule{r}}); err == nil && d.Allowed {
				admitted++
			}
		}
		if admitted != 1023 {
			t.Errorf("%s: %d of 1100 admitted; want 1023 (1023 x 2^53 fits under 2^63-1, 1024 x does not)", algo, admitted)
		}
	}
}
