package degrade

import (
	"context"
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// BenchmarkCallOverhead is what the budget costs a decision that answers
// at once: a goroutine, a channel and a timer.
func BenchmarkCallOverhead(b *testing.B) {
	c := newCall(Settings{Breaker: BreakerOptions{Failures: 5, Cooldown: time.Second}}, nil, nil)
	f := func(context.Context) (limiter.Decision, error) { return limiter.Decision{Allowed: true}, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, reason, _ := c.do(time.Second, f); reason != "" {
			b.Fatal(reason)
		}
	}
}
