package limiter

import (
	"testing"
	"time"
)

// reply builds peek.lua's reply for one rule.
func reply(allowed bool, remaining, reset, retry, visible int64) []int64 {
	a := int64(0)
	if allowed {
		a = 1
	}
	return []int64{a, remaining, reset, retry, visible}
}

// t0 is the tests' start of time.
var t0 = time.Unix(1_700_000_000, 0)

// deciderFor is a replica decider with no Redis behind it, a request of
// tenant acme for rule, and the tenant's pending shard.
func deciderFor(rule Rule) (*replicaDecider, Request, *pendingShard) {
	r := newReplicaDecider(&RedisStore{prefix: "p", instance: "i"}, 16)
	return r, Request{Tenant: "acme", Rules: []Rule{rule}}, r.shard("acme")
}

// TestSettleKnowsAReplacedLog: a pending log emptied and replaced while a
// decision's script ran is another log; its entries are new to the
// decision, and none of them may be forgotten on the snapshot's word.
func TestSettleKnowsAReplacedLog(t *testing.T) {
	r, req, sh := deciderFor(Rule{Name: "r", Limit: 3, Window: time.Second})

	snapX := r.snapshot(sh, req, t0)
	settled(r, sh, req, &snapX, reply(true, 3, 0, 0, 0), "x", t0, true) // X admitted: log L1 {X}

	snapA := r.snapshot(sh, req, t0.Add(500*time.Millisecond))  // A reads: L1 with X
	snapC := r.snapshot(sh, req, t0.Add(1100*time.Millisecond)) // X expired: L1 deleted
	settled(r, sh, req, &snapC, reply(true, 3, 0, 0, 0), "c", t0.Add(1100*time.Millisecond), true)

	// A's replica shows X (visible 1) and one unit used of 3.
	d, _ := settled(r, sh, req, &snapA, reply(true, 2, 0, 0, 1), "a", t0.Add(1200*time.Millisecond), true)
	if !d.Allowed || d.Rules[0].Remaining != 0 {
		t.Fatalf("A: got allowed=%v remaining=%d; want allowed with 0 left (X seen by the replica, C admitted meanwhile, A itself)",
			d.Allowed, d.Rules[0].Remaining)
	}
	lg := sh.logs[Key("p", "acme", "r")]
	if lg == nil || len(lg.entries) != 2 || lg.entries[0].member != "c:1" {
		t.Fatalf("pending log after A: %+v; want C then A (C must not be forgotten)", lg)
	}
}

func TestDenialsLeaveNoPendingLog(t *testing.T) {
	r := newReplicaDecider(&RedisStore{prefix: "p", instance: "i"}, 16)
	req := Request{Tenant: "anon:192.0.2.1", Rules: []Rule{{Name: "r", Limit: 1, Window: time.Second}}}
	sh := r.shard(req.Tenant)
	now := time.Unix(1_700_000_000, 0)
	snap := r.snapshot(sh, req, now)
	settled(r, sh, req, &snap, reply(false, 0, 500_000, 500_000, 0), "d", now, true)
	if n := len(sh.logs); n != 0 {
		t.Fatalf("%d pending logs after a denial; want 0", n)
	}
}

// TestPendingLogsOfGoneClientsAreSwept: keys never decided again (an
// anonymous client that left) do not stay in memory.
func TestPendingLogsOfGoneClientsAreSwept(t *testing.T) {
	r := newReplicaDecider(&RedisStore{prefix: "p", instance: "i"}, 1024)
	rule := Rule{Name: "r", Limit: 10, Window: time.Second}
	now := time.Unix(1_700_000_000, 0)
	for i := range 200 {
		req := Request{Tenant: "anon:" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Rules: []Rule{rule}}
		sh := r.shard(req.Tenant)
		snap := r.snapshot(sh, req, now)
		settled(r, sh, req, &snap, reply(true, 10, 0, 0, 0), "m", now, true)
	}
	later := now.Add(sweepEvery + 2*time.Second)
	total := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		sh.maybeSweep(later)
		total += len(sh.logs)
		sh.mu.Unlock()
	}
	if total != 0 {
		t.Fatalf("%d pending logs left a window and a sweep after their last admission; want 0", total)
	}
}

// TestFallbackReadKeepsPendingEntries: what only the primary shows (a
// fallback read while the replica is out) stays pending, since the replica
// may not have it when it is asked next; what the replica shows is
// forgotten.
func TestFallbackReadKeepsPendingEntries(t *testing.T) {
	for _, onReplica := range []bool{true, false} {
		r, req, sh := deciderFor(Rule{Name: "r", Limit: 10, Window: time.Minute})
		snap := r.snapshot(sh, req, t0)
		settled(r, sh, req, &snap, reply(true, 10, 0, 0, 0), "x", t0, true) // X pending
		snap = r.snapshot(sh, req, t0.Add(time.Second))
		settled(r, sh, req, &snap, reply(true, 9, 0, 0, 1), "y", t0.Add(time.Second), onReplica) // the read shows X
		want := map[bool]int{true: 1, false: 2}[onReplica]                                       // Y, and X unless the replica showed it
		if n := len(sh.logs[Key("p", "acme", "r")].entries); n != want {
			t.Errorf("read on the replica=%v: %d pending; want %d", onReplica, n, want)
		}
	}
}

// settled is r.settle returning the decision.
func settled(r *replicaDecider, sh *pendingShard, req Request, snap *snapshot, v []int64, member string, now time.Time, onReplica bool) (Decision, bool) {
	var d Decision
	cacheable := r.settle(sh, req, snap, v, member, now, onReplica, &d)
	return d, cacheable
}
