package limiter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/limiter"
)

// TestCounterRulesUseConstantMemory: a sliding window and a monthly quota
// each keep one small hash, whatever they count: MEMORY USAGE after one
// request and after 1 000 000 units (1 000 requests of cost 1 000) is the
// same few dozen bytes, under 1 KB. Run with -v for the numbers.
func TestCounterRulesUseConstantMemory(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	c := srv.Client(t)
	ctx := context.Background()
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
	rules := []limiter.Rule{
		{Name: "win", Limit: 1_000_000, Window: time.Hour, Cost: 1000, Algorithm: limiter.AlgoSlidingWindow},
		{Name: "monthly", Limit: 1_000_000, Cost: 1000, Algorithm: limiter.AlgoFixed, Period: limiter.PeriodMonth, Timezone: "Europe/Berlin"},
	}
	usage := func() map[string]int64 {
		keys, err := c.Keys(ctx, prefix+":*").Result()
		if err != nil || len(keys) != 2 {
			t.Fatalf("keys %v, %v; want one per rule", keys, err)
		}
		out := map[string]int64{}
		for _, k := range keys {
			n, err := c.MemoryUsage(ctx, k, 0).Result()
			if err != nil {
				t.Fatal(err)
			}
			out[k[strings.LastIndex(k, "}:")+2:]] = n
		}
		return out
	}
	var first map[string]int64
	for i := range 1000 {
		if d := decideOK(t, s, "mem", rules...); !d.Allowed {
			t.Fatalf("request %d: denied; want allowed", i+1)
		}
		if i == 0 {
			first = usage()
		}
	}
	if d := decideOK(t, s, "mem", rules...); d.Allowed {
		t.Fatal("request 1001: allowed; want denied (1 000 000 units counted)")
	}
	last := usage()
	t.Logf("MEMORY USAGE after 1 request: %v; after 1 000 000 units: %v", first, last)
	for k, n := range last {
		if n >= 1024 || n > first[k]+16 {
			t.Errorf("%s: %d bytes after 1 000 000 units, %d after one; want under 1 KB and constant", k, n, first[k])
		}
	}
}
