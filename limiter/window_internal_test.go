package limiter

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// TestWindowAtMatchesRoll: window.lua's window_at and slideWindow.roll
// move the same state (kept by window was) to the same bucket, count and
// weighted count at now, by window.
func TestWindowAtMatchesRoll(t *testing.T) {
	t.Parallel()
	c := redistest.Server(t).Client(t)
	ctx := context.Background()
	lua := redis.NewScript(windowSrc + `
local window, now = tonumber(ARGV[5]), tonumber(ARGV[6])
local w = window_at({ARGV[1], ARGV[2], ARGV[3], ARGV[4]}, window, now)
return {w.b, w.c, w.p, w.c + weighted(w.p, window, math.max(now - w.b * window, 0))}`)
	rng := rand.New(rand.NewPCG(1, 2))
	windows := []int64{1000, 7000, 250_000, 1_000_000, 3_000_000, 60_000_000}
	for i := range 3000 {
		was := windows[rng.IntN(len(windows))]
		window := windows[rng.IntN(len(windows))]
		now := int64(1_764_000_000_000_000) + rng.Int64N(1_000_000_000)
		b := now/was + rng.Int64N(5) - 3
		st := slideWindow{b: b, c: rng.Int64N(1000), p: rng.Int64N(1000), win: was}
		got, err := lua.Run(ctx, c, nil, st.b, st.c, st.p, was, window, now).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		g := st
		g.roll(now, window)
		want := []int64{g.b, g.c, g.p, g.used(now, window)}
		if [4]int64(got) != [4]int64(want) {
			t.Fatalf("case %d: %+v rolled to now %d by window %d: Lua b,c,p,used %v; Go %v", i, st, now, window, got, want)
		}
	}
}
