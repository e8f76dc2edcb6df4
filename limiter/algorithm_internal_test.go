package limiter

import (
	"math"
	"testing"
	"time"
)

func TestBounds(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no zone data: %v", err)
	}
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		name       string
		r          Rule
		loc        *time.Location
		now        string
		start, end string
	}{
		{"day", Rule{Period: PeriodDay}, time.UTC, "2026-11-29T12:25:00Z", "2026-11-29T00:00:00Z", "2026-11-30T00:00:00Z"},
		{"day in a zone", Rule{Period: PeriodDay}, ny, "2026-11-29T03:00:00Z", "2026-11-28T05:00:00Z", "2026-11-29T05:00:00Z"},
		{"day of 23 hours (DST starts)", Rule{Period: PeriodDay}, ny, "2026-03-08T12:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"},
		{"week from Monday", Rule{Period: PeriodWeek}, time.UTC, "2026-11-29T12:00:00Z", "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"},
		{"week on its Monday", Rule{Period: PeriodWeek}, time.UTC, "2026-11-30T00:00:00Z", "2026-11-30T00:00:00Z", "2026-12-07T00:00:00Z"},
		{"month", Rule{Period: PeriodMonth}, time.UTC, "2026-12-31T23:59:59Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"anchor 15, before it", Rule{Period: PeriodMonth, Anchor: 15}, time.UTC, "2026-01-14T23:00:00Z", "2025-12-15T00:00:00Z", "2026-01-15T00:00:00Z"},
		{"anchor 15, on it", Rule{Period: PeriodMonth, Anchor: 15}, time.UTC, "2026-01-15T00:00:00Z", "2026-01-15T00:00:00Z", "2026-02-15T00:00:00Z"},
		{"anchor 31 clamps to February's end", Rule{Period: PeriodMonth, Anchor: 31}, time.UTC, "2026-02-10T00:00:00Z", "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"anchor 31 comes back in March", Rule{Period: PeriodMonth, Anchor: 31}, time.UTC, "2026-03-01T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"anchor 30 in a leap February", Rule{Period: PeriodMonth, Anchor: 30}, time.UTC, "2028-02-29T12:00:00Z", "2028-02-29T00:00:00Z", "2028-03-30T00:00:00Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start, end := tc.r.Bounds(tc.loc, utc(tc.now))
			if !start.Equal(utc(tc.start)) || !end.Equal(utc(tc.end)) {
				t.Fatalf("got [%s, %s); want [%s, %s)", start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), tc.start, tc.end)
			}
		})
	}
}

// TestSlidingWindowRetryIsTheFirstFit: retry is the first µs at which the
// request fits, found by stepping the clock, for every count of a small
// bucket pair.
func TestSlidingWindowRetryIsTheFirstFit(t *testing.T) {
	const window, limit = 1000, 7
	for p := int64(0); p <= limit; p++ {
		for c := int64(0); c <= limit; c++ {
			for cost := int64(1); cost <= 3; cost++ {
				w := slideWindow{b: 5, c: c, p: p}
				now := int64(5*window + 100)
				if w.used(now, window)+cost <= limit {
					continue
				}
				got := w.retry(now, window, limit, cost)
				want := int64(-1)
				for d := int64(1); d <= 2*window; d++ {
					x := w
					x.roll(now+d, window)
					if x.used(now+d, window)+cost <= limit {
						want = d
						break
					}
				}
				if got != want {
					t.Fatalf("p=%d c=%d cost=%d: retry %d µs; want %d (stepping the clock)", p, c, cost, got, want)
				}
			}
		}
	}
}

func TestRuleString(t *testing.T) {
	for r, want := range map[Rule]string{
		{Name: "per_second", Limit: 10, Window: time.Second}:                                        "per_second: 10 per 1s",
		{Name: "burst", Limit: 10, Window: time.Second, Algorithm: AlgoSlidingWindow}:               "burst: 10 per 1s (sliding_window)",
		{Name: "monthly", Limit: 1000, Algorithm: AlgoFixed, Period: PeriodMonth, Mode: RuleShadow}: "monthly: 1000 per month (shadow)",
	} {
		if got := r.String(); got != want {
			t.Errorf("got %q; want %q", got, want)
		}
	}
}

// TestSlidingRetryNearTheTopOfInt64: a sliding window's Retry-After for a
// request past a limit of 2^63-1 comes at once. Its count plus the cost
// wrapped round to a negative that "fit", and the search for when it
// would walked the whole window a µs at a time (3.6e9 steps for an hour,
// seconds each, under the memory store's shard lock):
// TestMemoryStoreNoOverflowNearTheLimit took 516 s.
func TestSlidingRetryNearTheTopOfInt64(t *testing.T) {
	window := time.Hour.Microseconds()
	w := slideWindow{b: 10, c: 1023 << 53}
	got := make(chan int64, 1)
	go func() { got <- w.retry(10*window+5, window, math.MaxInt64, 1<<53) }()
	select {
	case v := <-got:
		// 1023 x 2^53 + 2^53 is 2^63: it fits a µs into the next bucket,
		// once this one's count has begun to slide out.
		if v != window-4 {
			t.Fatalf("retry: %d µs; want %d", v, window-4)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("retry still searching after 2 s")
	}
}
