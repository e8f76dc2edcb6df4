package limiter

import (
	"context"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
)

// TestReplayFindsItsCount: a call sent again after a lost reply finds its
// own request counted in a counter rule's hash (m, the last member
// counted) and counts it no second time, in a request of counter rules
// only, where no sorted set holds a member to find.
func TestReplayFindsItsCount(t *testing.T) {
	t.Parallel()
	c := redistest.Server(t).Client(t)
	ctx := context.Background()
	window := Rule{Name: "w", Limit: 1, Window: time.Minute, Algorithm: AlgoSlidingWindow}
	quota := Rule{Name: "q", Limit: 1, Algorithm: AlgoFixed, Period: PeriodDay}
	keys := []string{ruleKey("rp", "acme", window, 0), ruleKey("rp", "acme", quota, 1_700_000_000_000_000)}
	call := func(member, replay string) []int64 {
		t.Helper()
		args := []any{member, replay,
			window.Window.Microseconds(), window.Limit, window.CostOrOne(), modeArg(window),
			int64(time.Hour / time.Microsecond), quota.Limit, quota.CostOrOne(), modeArg(quota)}
		v, err := decideScript.Run(ctx, c, keys, args...).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := call("gw:1", "0"); v[0] != 1 || v[1] != 0 || v[4] != 0 {
		t.Fatalf("1st: reply %v; want allowed, nothing left in either rule", v)
	}
	if v := call("gw:2", "0"); v[0] != 0 {
		t.Fatalf("2nd: reply %v; want denied", v)
	}
	if v := call("gw:1", "1"); v[0] != 1 {
		t.Fatalf("1st sent again: reply %v; want allowed (it was counted)", v)
	}
	for _, k := range keys {
		if n, _ := c.HGet(ctx, k, "c").Int64(); n != 1 {
			t.Errorf("%s counts %d after a replay; want 1", k, n)
		}
	}
	if ttl := c.PTTL(ctx, keys[0]).Val(); ttl <= 119*time.Second || ttl > 2*time.Minute {
		t.Errorf("the sliding window's key expires in %v; want in two windows, 2m", ttl)
	}
	if ttl := c.PTTL(ctx, keys[1]).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("the quota's key expires in %v; want at its period's end, 1h", ttl)
	}
}
