package limiter_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// BenchmarkSharedDecisions is one tenant's decisions 64 at a time, as a
// loaded gateway sends them, for 1 and 3 rules (a log, then a log, a
// sliding window and a quota): the Redis time each decision costs
// (EVALSHA's usec in INFO commandstats over the decisions) and the
// decisions a script call carries.
func BenchmarkSharedDecisions(b *testing.B) {
	srv := redistest.Server(b)
	c := srv.Client(b)
	window := limiter.Rule{Name: "w", Limit: 1 << 40, Window: time.Hour, Algorithm: limiter.AlgoSlidingWindow}
	quota := limiter.Rule{Name: "q", Limit: 1 << 40, Algorithm: limiter.AlgoFixed, Period: limiter.PeriodMonth}
	for _, tc := range []struct {
		name    string
		rules   []limiter.Rule
		tenants int // the decisions go to this many tenants in turn
	}{
		{"rules=1", benchRules(1, 1<<40), 1},
		{"rules=3", append(benchRules(1, 1<<40), window, quota), 1},
		// Each batch's decisions of other tenants: one mixed call.
		{"rules=1/tenants=1000", benchRules(1, 1<<40), 1000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, _ := newRedisStore(b, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
			reqs := make([]limiter.Request, tc.tenants)
			for i := range reqs {
				reqs[i] = limiter.Request{Tenant: fmt.Sprintf("shared-%s-%d", tc.name, i), Rules: tc.rules}
			}
			ctx := context.Background()
			if _, err := s.Decide(ctx, reqs[0]); err != nil { // load the script
				b.Fatal(err)
			}
			if err := c.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			var next atomic.Uint64
			b.SetParallelism(32) // 64 in flight on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Decide(ctx, reqs[next.Add(1)%uint64(len(reqs))]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			calls, usec := limiter.CommandStats(b, c, "evalsha")
			if calls == 0 {
				b.Fatal("no EVALSHA counted")
			}
			b.ReportMetric(usec/float64(b.N), "redis-µs/decision")
			b.ReportMetric(float64(b.N)/float64(calls), "decisions/call")
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

// BenchmarkScriptCost is what a decision costs Redis itself: usec_per_call
// of EVALSHA in INFO commandstats, for decide.lua as the store sends it and
// for the first version of the script, kept as the naive reference of
// make bench-compare (loadtest/benchcompare/naive.lua), one rule, admitted;
// then decide.lua for one rule denied, for one rule of each counter
// algorithm, and for a log, a sliding window and a quota in one call.
func BenchmarkScriptCost(b *testing.B) {
	naiveSrc, err := os.ReadFile("../loadtest/benchcompare/naive.lua")
	if err != nil {
		b.Fatal(err)
	}
	srv := redistest.Server(b)
	c := srv.Client(b)
	ctx := context.Background()
	rules := benchRules(1, 1<<40)
	decider := func(rules ...limiter.Rule) func(int) error {
		s, _ := newRedisStore(b, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
		return func(int) error {
			_, err := s.Decide(ctx, limiter.Request{Tenant: "cost", Rules: rules})
			return err
		}
	}
	window := limiter.Rule{Name: "w", Limit: 1 << 40, Window: time.Second, Algorithm: limiter.AlgoSlidingWindow}
	quota := limiter.Rule{Name: "q", Limit: 1 << 40, Algorithm: limiter.AlgoFixed, Period: limiter.PeriodMonth, Timezone: "Europe/Berlin"}
	for _, tc := range []struct {
		name   string
		decide func(i int) error
	}{
		{"decide.lua", decider(rules...)},
		// One unit per hour, so every call but the first is denied (the
		// bench store has no deny cache).
		{"decide.lua/denied", decider(limiter.Rule{Name: "d", Limit: 1, Window: time.Hour})},
		{"decide.lua/sliding_window", decider(window)},
		{"decide.lua/fixed", decider(quota)},
		{"decide.lua/log+window+fixed", decider(rules[0], window, quota)},
		{"naive.lua", func() func(int) error {
			script := redis.NewScript(string(naiveSrc))
			return func(i int) error {
				return script.Run(ctx, c, []string{"naive:{cost}:r0"}, "naive:"+strconv.Itoa(i), int64(time.Second/time.Microsecond), int64(1)<<40, 1).Err()
			}
		}()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if err := tc.decide(-1); err != nil { // load the script
				b.Fatal(err)
			}
			if err := c.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				if err := tc.decide(i); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(evalshaUsecPerCall(b, c), "redis-µs/call")
		})
	}
}

// evalshaUsecPerCall is EVALSHA's µs per call since the stats were reset.
func evalshaUsecPerCall(b *testing.B, c *redis.Client) float64 {
	calls, usec := limiter.CommandStats(b, c, "evalsha")
	if calls == 0 {
		b.Fatal("no EVALSHA counted")
	}
	return usec / float64(calls)
}

// memoryRules are the rule shapes BenchmarkRedisMemoryPerTenant measures:
// one rule each, with a window long enough that nothing it admitted
// expires while it is filled.
var memoryRules = []struct {
	name string
	rule limiter.Rule
}{
	{"sliding_log", limiter.Rule{Name: "r", Limit: 1 << 40, Window: time.Hour}},
	{"sliding_window", limiter.Rule{Name: "r", Limit: 1 << 40, Window: time.Hour, Algorithm: limiter.AlgoSlidingWindow}},
	{"fixed", limiter.Rule{Name: "r", Limit: 1 << 40, Algorithm: limiter.AlgoFixed, Period: limiter.PeriodMonth, Timezone: "Europe/Berlin"}},
}

// BenchmarkRedisMemoryPerTenant is what one tenant costs Redis with n
// requests admitted in its rule's window: MEMORY USAGE summed over every
// key of the tenant (a SCAN of its hash tag), for each rule shape. The
// requests are decided 64 at a time, as a loaded gateway sends them.
func BenchmarkRedisMemoryPerTenant(b *testing.B) {
	srv := redistest.Server(b)
	c := srv.Client(b)
	for _, shape := range memoryRules {
		for _, n := range []int{1_000, 100_000, 1_000_000} {
			b.Run(fmt.Sprintf("%s/requests=%d", shape.name, n), func(b *testing.B) {
				var bytes int64
				for b.Loop() {
					s, prefix := newRedisStore(b, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
					fillTenant(b, s, "mem", shape.rule, n)
					bytes = tenantBytes(b, c, prefix, "mem")
				}
				b.ReportMetric(float64(bytes), "bytes/tenant")
				b.ReportMetric(float64(bytes)/float64(n), "bytes/request")
			})
		}
	}
}

// fillTenant admits n requests of tenant under rule, from 64 goroutines.
func fillTenant(b *testing.B, s *limiter.RedisStore, tenant string, rule limiter.Rule, n int) {
	const workers = 64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	rules := []limiter.Rule{rule}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				d, err := s.Decide(context.Background(), limiter.Request{Tenant: tenant, Rules: rules})
				if err == nil && !d.Allowed {
					err = fmt.Errorf("request %d denied", i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// tenantBytes sums MEMORY USAGE over every key of tenant under prefix.
func tenantBytes(b *testing.B, c *redis.Client, prefix, tenant string) int64 {
	ctx := context.Background()
	var total int64
	iter := c.Scan(ctx, 0, prefix+":{"+tenant+"}*", 1000).Iterator()
	for iter.Next(ctx) {
		n, err := c.MemoryUsage(ctx, iter.Val(), 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	if err := iter.Err(); err != nil {
		b.Fatal(err)
	}
	if total == 0 {
		b.Fatalf("no key of tenant %s under %s", tenant, prefix)
	}
	return total
}
