package limiter_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// admissions decides every arrival (offsets from a bucket-aligned start)
// against r on a memory store of its own and returns the admitted times.
func admissions(t *testing.T, r limiter.Rule, arrivals []time.Duration) []time.Duration {
	clk := newFakeClock()
	s := limiter.NewMemoryStore(clk.Now)
	start := clk.Now()
	var out []time.Duration
	for _, at := range arrivals {
		clk.Advance(start.Add(at).Sub(clk.Now()))
		d, err := s.Decide(context.Background(), limiter.Request{Tenant: "t", Rules: []limiter.Rule{r}})
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			out = append(out, at)
		}
	}
	return out
}

// mostInAWindow is the most admissions inside any window of length w.
func mostInAWindow(times []time.Duration, w time.Duration) int {
	most, from := 0, 0
	for i, at := range times {
		for times[from] <= at-w {
			from++
		}
		most = max(most, i-from+1)
	}
	return most
}

// TestSlidingWindowErrorAgainstTheLog measures what the README states
// about the sliding window's error: the log never admits more than the
// limit in any window; the weighted counter, fed the worst case (a burst
// at a bucket's end, then a client retrying every millisecond), admits up
// to twice the limit within one window, and under uniform random traffic
// it admits within a few percent of the log. Run with -v for the numbers.
func TestSlidingWindowErrorAgainstTheLog(t *testing.T) {
	const limit = 100
	w := time.Second
	logRule := limiter.Rule{Name: "r", Limit: limit, Window: w}
	winRule := limiter.Rule{Name: "r", Limit: limit, Window: w, Algorithm: limiter.AlgoSlidingWindow}

	// The edge burst: limit requests in the last millisecond of bucket 0,
	// then one every millisecond for two windows.
	var edge []time.Duration
	for i := range limit {
		edge = append(edge, w-time.Millisecond+time.Duration(i)*time.Microsecond)
	}
	for at := w; at < 3*w; at += time.Millisecond {
		edge = append(edge, at)
	}
	logMost, winMost := mostInAWindow(admissions(t, logRule, edge), w), mostInAWindow(admissions(t, winRule, edge), w)
	t.Logf("edge burst: most admitted in any %v window: log %d, sliding window %d (limit %d)", w, logMost, winMost, limit)
	if logMost != limit || winMost > 2*limit || winMost <= limit {
		t.Fatalf("edge burst: log %d, window %d; want the log exact and the window over it, within 2x", logMost, winMost)
	}

	// Uniform random traffic (Poisson arrivals) at several loads, for 200
	// windows each.
	for _, load := range []float64{0.5, 1.0, 1.5, 3.0} {
		rng := rand.New(rand.NewPCG(1, uint64(load*10)))
		var arrivals []time.Duration
		for at := time.Duration(0); at < 200*w; {
			at += time.Duration(rng.ExpFloat64() / (load * limit) * float64(w))
			arrivals = append(arrivals, at)
		}
		lg, win := admissions(t, logRule, arrivals), admissions(t, winRule, arrivals)
		diff := float64(len(win)-len(lg)) / float64(len(lg)) * 100
		t.Logf("uniform at %.1fx the limit: %d arrivals; admitted: log %d, sliding window %d (%+.2f%%); most in a window: log %d, sliding window %d",
			load, len(arrivals), len(lg), len(win), diff, mostInAWindow(lg, w), mostInAWindow(win, w))
		if mostInAWindow(lg, w) > limit || diff > 5 || diff < -5 {
			t.Fatalf("uniform at %.1fx: log most %d, window off by %.2f%%; want the log within the limit and the window within 5%%", load, mostInAWindow(lg, w), diff)
		}
	}
}
