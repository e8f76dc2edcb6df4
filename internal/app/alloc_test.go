//go:build !race

package app

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/l1gw/l1gw/internal/redistest"
)

// TestServeDoesNotAllocate guards the hot path: an admitted, forwarded
// request, one a shadow rule would have denied (X-RateLimit-Shadow), a
// denied one, and those of the counter algorithms (a sliding window and a
// quota in a time zone) cost no heap allocation once warm, on the
// memory store and on Redis (exact consistency: the pipe, the script call
// and its reply included); nor does one with its key in the query
// (tenants.key_query, stripped before forwarding), nor one refused for a
// missing or unknown key, nor an anonymous caller's (tenants.unknown:
// anonymous).
func TestServeDoesNotAllocate(t *testing.T) {
	srv := redistest.Server(t)
	cases := []struct {
		name, key string
		want      int
		sets      []string
		path      string // "" is /alloc
	}{
		{"memory/admitted", "bulk-key", 200, nil, ""},
		{"memory/denied", "acme-key", 429, nil, ""},
		{"memory/shadow-denied", "trying-key", 200, nil, ""},
		{"memory/counters-admitted", "counter-key", 200, nil, ""},
		{"memory/quota-denied", "quota-key", 429, nil, ""},
		{"redis/admitted", "bulk-key", 200, redisSets(srv.Addr(), "ratelimit.budget=1s"), ""},
		{"redis/denied", "acme-key", 429, redisSets(srv.Addr(), "ratelimit.budget=1s"), ""},
		{"redis/shadow-denied", "trying-key", 200, redisSets(srv.Addr(), "ratelimit.budget=1s"), ""},
		{"redis/counters-admitted", "counter-key", 200, redisSets(srv.Addr(), "ratelimit.budget=1s"), ""},
		{"redis/quota-denied", "quota-key", 429, redisSets(srv.Addr(), "ratelimit.budget=1s"), ""},
		{"memory/key in the query", "", 200, []string{"tenants.key_query=user_key"}, "/alloc?a=1&user_key=bulk-key"},
		{"memory/missing key", "", 401, nil, ""},
		{"memory/unknown key", "nope", 401, nil, ""},
		{"memory/anonymous", "", 200, []string{"tenants.unknown=anonymous", "tenants.anonymous_plan=huge"}, ""},
		{"memory/anonymous, unknown key", "nope", 200, []string{"tenants.unknown=anonymous", "tenants.anonymous_plan=huge"}, ""},
		{"redis/anonymous", "", 200, redisSets(srv.Addr(), "ratelimit.budget=1s", "tenants.unknown=anonymous", "tenants.anonymous_plan=huge"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/alloc"
			}
			f := newHandlerFixture(t, tc.key, "GET", path, tc.sets...)
			for range 10 {
				f.Serve()
			}
			var code int
			// AllocsPerRun counts the whole process, the limiter's
			// clocked reads of Redis included: one INFO every 25 ms, about
			// 15 allocations each. On a slow machine (steal, a busy
			// neighbour) 200 requests take long enough for those to come
			// to one per request. A count above 0 is so checked again,
			// each allocation by its stack.
			allocs := testing.AllocsPerRun(200, func() { code = f.Serve() })
			if code != tc.want {
				t.Fatalf("status %d; want %d", code, tc.want)
			}
			if allocs > 0 {
				n, stacks := requestAllocs(1000, func() { f.Serve() })
				if n > 0 {
					t.Fatalf("%.1f allocations per request (%.1f with the clocked reads); want 0. The request's, most frequent first:\n%s",
						n, allocs, strings.Join(stacks, "\n"))
				}
				t.Logf("%.1f allocations per request with the clocked reads, 0 without", allocs)
			}
		})
	}
}

// clocked are the functions whose goroutines allocate by the clock, not
// per request: the eviction watcher's INFO read and the pipe's watchdog.
var clocked = []string{
	"github.com/l1gw/l1gw/limiter.(*pipe).watchMemory",
	"github.com/l1gw/l1gw/limiter.(*pipe).watch",
}

// requestAllocs is what AllocsPerRun counts for f, a whole number per
// run, less the allocations made in a clocked goroutine or by
// requestAllocs itself: every allocation is profiled while it measures
// (MemProfileRate 1), so that each is told by its stack. The collections
// that bring the profile up to date empty every sync.Pool, so the first
// runs refill them; over many runs those few round down to 0. It returns
// the stacks it counted, most frequent first, each with its count.
func requestAllocs(runs int, f func()) (float64, []string) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	rate := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = rate }()
	before := allocsByStack()
	for range runs {
		f()
	}
	after := allocsByStack()
	type site struct {
		n    int64
		text string
	}
	var total int64
	var sites []site
	for stack, n := range after {
		if n -= before[stack]; n <= 0 {
			continue
		}
		if text, counted := describe(stack); counted {
			total += n
			sites = append(sites, site{n, text})
		}
	}
	sort.Slice(sites, func(i, j int) bool { return sites[i].n > sites[j].n })
	stacks := make([]string, len(sites))
	for i, s := range sites {
		stacks[i] = fmt.Sprintf("%d allocations:\n%s", s.n, s.text)
	}
	return float64(total / int64(runs)), stacks
}

// allocsByStack is the heap profile's allocation count of every stack,
// after the two collections that bring it up to date.
func allocsByStack() map[[32]uintptr]int64 {
	runtime.GC()
	runtime.GC()
	n, _ := runtime.MemProfile(nil, true)
	recs := make([]runtime.MemProfileRecord, n+64)
	for {
		var ok bool
		if n, ok = runtime.MemProfile(recs, true); ok {
			break
		}
		recs = make([]runtime.MemProfileRecord, n+64)
	}
	out := make(map[[32]uintptr]int64, n)
	for _, r := range recs[:n] {
		out[r.Stack0] += r.AllocObjects
	}
	return out
}

// describe writes stack a frame a line, and tells whether its allocation
// counts: not in a clocked goroutine, nor requestAllocs' own.
func describe(stack [32]uintptr) (string, bool) {
	var b strings.Builder
	counted := true
	frames := runtime.CallersFrames(stack[:])
	for {
		fr, more := frames.Next()
		if slices.Contains(clocked, fr.Function) || strings.HasSuffix(fr.Function, "app.allocsByStack") {
			counted = false
		}
		if fr.Function != "" {
			fmt.Fprintf(&b, "    %s:%d\n", fr.Function, fr.Line)
		}
		if !more {
			return b.String(), counted
		}
	}
}
