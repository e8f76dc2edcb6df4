package limiter

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
)

// TestSnapshotSendsALogOfOneCostAsThreeNumbers: however many admissions
// are pending, a log of one cost goes to peek.lua as its first ordinal,
// its length and the cost; a log whose cost changed adds each cost.
// A new log's ordinals start above every ordinal its shard gave before.
func TestSnapshotSendsALogOfOneCostAsThreeNumbers(t *testing.T) {
	rule := Rule{Name: "r", Limit: 1000, Window: time.Minute}
	r, req, sh := deciderFor(rule)
	snap := r.snapshot(sh, req, t0)
	var d Decision
	for i := range 100 {
		d = Decision{Allowed: true, N: 1}
		d.Rules[0] = RuleState{Remaining: 1000}
		r.admit(sh, req, &snap, &d, [MaxRules]*pendingLog{sh.logs[snap.keys[0]]}, "m"+string(rune('a'+i%26)), t0)
		<-r.recorder.queue
	}
	r.letGo(sh, &snap)
	snap = r.snapshot(sh, req, t0.Add(time.Second))
	lg := sh.logs[snap.keys[0]]
	if len(lg.entries) != 100 || lg.entries[0].ord != 0 || lg.entries[99].ord != 99 {
		t.Fatalf("pending log of %d entries, ordinals %d..%d; want 100, 0..99", len(lg.entries), lg.entries[0].ord, lg.entries[99].ord)
	}
	want := []any{"i", rule.Window.Microseconds(), int64(1000), int64(1), int64(0), -1, int64(0), 100, int64(1)}
	if len(snap.args) != len(want) {
		t.Fatalf("args %v; want %v", snap.args, want)
	}
	for i := range want {
		if snap.args[i] != want[i] {
			t.Fatalf("arg %d: %#v; want %#v (all args %v)", i, snap.args[i], want[i], snap.args)
		}
	}
	if len(snap.keys) != 2 || snap.keys[1] != snap.keys[0]+highWaterSuffix {
		t.Fatalf("keys %v; want the log's, then its high-water hash", snap.keys)
	}
	costly := rule
	costly.Cost = 3
	sh.add(lg, snap.keys[0], costly, t0) // the rule's cost changed
	r.letGo(sh, &snap)
	snap = r.snapshot(sh, req, t0.Add(time.Second))
	if n := len(snap.args); n != 1+4+3+101 {
		t.Fatalf("a log of two costs: %d args; want %d, its first ordinal, length and each cost", n, 1+4+3+101)
	}
	if snap.args[5] != -2 || snap.args[6] != int64(0) || snap.args[7] != 101 || snap.args[len(snap.args)-1] != int64(3) {
		t.Fatalf("a log of two costs: args %v; want -2, 0, 101, then the costs ending in 3", snap.args[:9])
	}
	lg.forget(lg.dropped + uint64(len(lg.entries))) // a replica shows them all
	r.letGo(sh, &snap)                              // and the emptied log goes
	if sh.logs[snap.keys[0]] != nil {
		t.Fatal("an empty log no decision reads is kept; want it removed")
	}
	snap = r.snapshot(sh, req, t0.Add(2*time.Second))
	r.admit(sh, req, &snap, &d, [MaxRules]*pendingLog{sh.logs[snap.keys[0]]}, "z", t0.Add(2*time.Second))
	if o := sh.logs[snap.keys[0]].entries[0].ord; o != 101 {
		t.Fatalf("a new log's first ordinal %d; want 101, above the old log's 0..100", o)
	}
}

// TestPeekReadsTheHighWaterMark: on a real Redis, record.lua leaves its
// ordinal in the high-water hash, and peek.lua counts as shown the pending
// admissions up to it, the rest on top of the set; with no mark, none is
// shown; a log of several costs is judged by the same mark.
func TestPeekReadsTheHighWaterMark(t *testing.T) {
	c := redistest.Server(t).Client(t)
	ctx := context.Background()
	key := Key("hw", "acme", "r")
	keys := []string{key, key + highWaterSuffix}
	window := time.Minute.Microseconds()
	for ord := int64(10); ord <= 12; ord++ {
		if err := recordScript.Run(ctx, c, keys, "g:"+string(rune('a'+ord)), "g", window, 1, ord).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if hw := c.HGet(ctx, key+highWaterSuffix, "g").Val(); hw != "12" {
		t.Fatalf("high-water mark %q; want 12, the last record's ordinal", hw)
	}
	peek := func(instance string, pending ...any) []int64 {
		t.Helper()
		args := append([]any{instance, window, 6, 1, 0}, pending...)
		v, err := peekScript.Run(ctx, c, keys, args...).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Pending 11..14: 11 and 12 are in the set, 13 and 14 are not: 3 + 2.
	if v := peek("g", -1, 11, 4, 1); v[0] != 1 || v[1] != 1 || v[4] != 2 {
		t.Fatalf("ordinals 11..14 pending, mark 12: reply %v; want allowed, 1 left, 2 shown", v)
	}
	// Another gateway's mark is not this one's: all 4 on top of the 3.
	if v := peek("other", -1, 11, 4, 1); v[0] != 0 || v[1] != 0 || v[4] != 0 {
		t.Fatalf("another instance, 4 pending: reply %v; want denied, none left, none shown", v)
	}
	// A mark past the pending ordinals shows them all.
	if v := peek("g", -1, 5, 3, 1); v[0] != 1 || v[1] != 3 || v[4] != 3 {
		t.Fatalf("ordinals 5..7 pending, mark 12: reply %v; want allowed, 3 left, 3 shown", v)
	}
	// Costs that differ, judged by the same mark: 12 shown, 13 (cost 2) not.
	if v := peek("g", -2, 12, 2, 1, 2); v[0] != 1 || v[1] != 1 || v[4] != 1 {
		t.Fatalf("costs 1 and 2 at 12..13, mark 12: reply %v; want allowed, 1 left (3 + 2 of cost), 1 shown", v)
	}
	// A member decide.lua wrote on the primary (ordinal 14, decided there)
	// before the record of 13 was written shows nothing of 13 (found in
	// review: a look for the newest member took 13 as shown).
	if err := c.ZAdd(ctx, key, redis.Z{Score: float64(time.Now().UnixMicro()), Member: "g:n:1"}).Err(); err != nil {
		t.Fatal(err)
	}
	if v := peek("g", -2, 13, 2, 2, 1); v[0] != 0 || v[4] != 0 {
		t.Fatalf("13 (cost 2) queued, 14's member written: reply %v; want denied (4 in the set + 3 pending of 6), none shown", v)
	}
}
