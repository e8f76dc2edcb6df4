package limiter_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/limiter"
)

func benchRules(n int, limit int64) []limiter.Rule {
	rules := make([]limiter.Rule, n)
	for i := range rules {
		rules[i] = limiter.Rule{Name: fmt.Sprintf("r%d", i), Limit: limit, Window: time.Duration(i+1) * time.Second}
	}
	return rules
}

// totalCommands sums every command Redis counted, including those run
// inside scripts, and the script calls (the round trips) alone.
func totalCommands(b *testing.B, c *redis.Client) (all, scripts int64) {
	stats, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(stats, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
		if name == "info" {
			continue
		}
		all += n
		if strings.HasPrefix(name, "eval") {
			scripts += n
		}
	}
	return all, scripts
}

// BenchmarkRedisDecide is one decision against a local redis-server (a
// loopback round trip), admitted or denied, for 1, 3 and 10 rules; it
// reports the Redis commands each costs, and the round trips (script calls).
func BenchmarkRedisDecide(b *testing.B) {
	srv := redistest.Server(b)
	c := srv.Client(b)
	for _, tc := range []struct {
		name      string
		rules     int
		limit     int64
		denyCache bool
	}{
		{"admitted/rules=1", 1, 1 << 40, false},
		{"admitted/rules=3", 3, 1 << 40, false},
		{"admitted/rules=10", 10, 1 << 40, false},
		{"denied/rules=3/deny-cache=off", 3, 1, false},
		{"denied/rules=3/deny-cache=on", 3, 1, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, _ := newRedisStore(b, redisOptions(limiter.ModeStandalone, srv.Addr()), tc.denyCache)
			req := limiter.Request{Tenant: "bench", Rules: benchRules(tc.rules, tc.limit)}
			ctx := context.Background()
			s.Decide(ctx, req) // load the script; for the denied cases, fill the limit
			all0, scripts0 := totalCommands(b, c)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Decide(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			all, scripts := totalCommands(b, c)
			b.ReportMetric(float64(all-all0)/float64(b.N), "redis-cmds/op")
			b.ReportMetric(float64(scripts-scripts0)/float64(b.N), "round-trips/op")
		})
	}
}

// BenchmarkRedisMemoryPerRequest records requests in one rule and reports
// MEMORY USAGE of its sorted set per recorded request.
func BenchmarkRedisMemoryPerRequest(b *testing.B) {
	srv := redistest.Server(b)
	c := srv.Client(b)
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("requests=%d", n), func(b *testing.B) {
			var perRequest float64
			for i := 0; b.Loop(); i++ {
				s, prefix := newRedisStore(b, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
				rules := benchRules(1, 1<<40)
				for range n {
					if _, err := s.Decide(context.Background(), limiter.Request{Tenant: "mem", Rules: rules}); err != nil {
						b.Fatal(err)
					}
				}
				bytes, err := c.MemoryUsage(context.Background(), limiter.Key(prefix, "mem", "r0"), 0).Result()
				if err != nil {
					b.Fatal(err)
				}
				perRequest = float64(bytes) / float64(n)
			}
			b.ReportMetric(perRequest, "bytes/request")
		})
	}
}
