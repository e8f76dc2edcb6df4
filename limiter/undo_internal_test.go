package limiter

import (
	"context"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
)

// TestUndoTakesBackOnce: undo.lua takes a sliding window's cost out of
// the bucket the request was counted in (c, or p once a later request
// rolled the hash), a fixed rule's out of its count, once however often
// it is sent, and creates no key that is gone.
func TestUndoTakesBackOnce(t *testing.T) {
	t.Parallel()
	c := redistest.Server(t).Client(t)
	ctx := context.Background()
	const w = int64(10 * time.Second / time.Microsecond)
	tm, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	now := tm.UnixMicro()
	bucket := now / w
	undo := func(key string, mode, window, rec int64) []int64 {
		t.Helper()
		v, err := undoScript.Run(ctx, c, []string{key}, "gw:1", "0", window, 100, 1, mode, rec).Int64Slice()
		if err != nil || len(v) != 2 {
			t.Fatalf("undo.lua on %s: %v, %v; want 2 values", key, v, err)
		}
		return v
	}
	field := func(key, f string) string { return c.HGet(ctx, key, f).Val() }
	for _, tc := range []struct {
		name   string
		rec    int64 // decide.lua's reset: (bucket recorded in + 2) x w - its now
		wantC  string
		wantP  string
		bucket int64
	}{
		{"counted in this bucket", (bucket+2)*w - now, "4", "3", bucket},
		{"rolled to p since", (bucket+1)*w - now, "5", "2", bucket},
		{"gone from the window", bucket*w - now, "5", "3", bucket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "sw:" + tc.name
			c.HSet(ctx, key, "b", tc.bucket, "c", 5, "p", 3, "m", "gw:1")
			for range 2 { // sent again after a lost reply: no second undo
				undo(key, modeArg(Rule{Algorithm: AlgoSlidingWindow}), w, tc.rec)
				if got := [2]string{field(key, "c"), field(key, "p")}; got != [2]string{tc.wantC, tc.wantP} {
					t.Fatalf("c, p: got %v; want %s, %s", got, tc.wantC, tc.wantP)
				}
			}
		})
	}
	fixed := modeArg(Rule{Algorithm: AlgoFixed})
	c.HSet(ctx, "fixed", "c", 3)
	for range 2 {
		if v := undo("fixed", fixed, w, 1); field("fixed", "c") != "2" || v[0] != 98 {
			t.Fatalf("fixed rule: c %s, answered %v; want c 2, 98 remaining", field("fixed", "c"), v)
		}
	}
	undo("gone", fixed, w, 1)
	if n := c.Exists(ctx, "gone").Val(); n != 0 {
		t.Fatalf("undo of a key gone meanwhile: %d keys; want none created", n)
	}
}
