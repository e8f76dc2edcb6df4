//go:build !race

package app

import (
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
// missing or unknown key.
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
			// AllocsPerRun counts the whole process: a background read of
			// Redis' memory state (every 25 ms) may fall in one
			// measurement. A request that allocates does in all three.
			allocs := testing.AllocsPerRun(200, func() { code = f.Serve() })
			for range 2 {
				allocs = min(allocs, testing.AllocsPerRun(200, func() { code = f.Serve() }))
			}
			if code != tc.want {
				t.Fatalf("status %d; want %d", code, tc.want)
			}
			if allocs > 0 {
				t.Fatalf("%.1f allocations per request; want 0", allocs)
			}
		})
	}
}
