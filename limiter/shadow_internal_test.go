package limiter

import (
	"context"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
)

// TestReplayFindsItsRecordPastAShadowSet: a call sent again after a lost
// reply looks for its own record before deciding. A shadow rule that
// would have denied holds no record of it, so the look-up must not stop
// at that rule's set: counted against itself, an admitted request would
// be answered denied.
func TestReplayFindsItsRecordPastAShadowSet(t *testing.T) {
	t.Parallel()
	c := redistest.Server(t).Client(t)
	ctx := context.Background()
	shadow := Rule{Name: "trial", Limit: 1, Window: time.Minute, Mode: RuleShadow}
	enforced := Rule{Name: "r", Limit: 2, Window: time.Minute}
	keys := []string{ShadowKey("rp", "acme", "trial"), Key("rp", "acme", "r")}
	call := func(member, replay string) []int64 {
		t.Helper()
		args := []any{member, replay}
		for _, r := range []Rule{shadow, enforced} {
			args = append(args, r.Window.Microseconds(), r.Limit, r.CostOrOne(), modeArg(r))
		}
		v, err := decideScript.Run(ctx, c, keys, args...).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	call("gw:1", "0") // fills the shadow rule
	if v := call("gw:2", "0"); v[0] != 1 || v[3] <= 0 {
		t.Fatalf("2nd: reply %v; want allowed, the shadow rule over (retry > 0)", v)
	}
	if v := call("gw:2", "1"); v[0] != 1 {
		t.Fatalf("2nd sent again: reply %v; want allowed (it was: the enforced rule holds it)", v)
	}
	if n := c.ZCard(ctx, keys[1]).Val(); n != 2 {
		t.Fatalf("the enforced set holds %d records after a replay; want 2 (the replay found its record)", n)
	}
	if n := c.ZCard(ctx, keys[0]).Val(); n != 1 {
		t.Fatalf("the shadow set holds %d records; want 1", n)
	}
}

// TestSettleShadowRule: in replica consistency, a shadow rule full on the
// replica, or filled by this gateway's admissions while the script ran,
// denies nothing and gets neither a pending entry nor a record.
func TestSettleShadowRule(t *testing.T) {
	enforced := Rule{Name: "r", Limit: 10, Window: time.Minute}
	shadow := Rule{Name: "trial", Limit: 2, Window: time.Minute, Mode: RuleShadow}
	r := newReplicaDecider(&RedisStore{prefix: "p", instance: "i"}, 16)
	req := Request{Tenant: "acme", Rules: []Rule{enforced, shadow}}
	sh := r.shard("acme")
	shadowKey := ShadowKey("p", "acme", "trial")
	// reply: allowed, then remaining, reset, retry, visible of each rule.
	settle := func(at time.Duration, v ...int64) Decision {
		t.Helper()
		snap := r.snapshot(sh, req, t0.Add(at))
		if snap.keys[1] != shadowKey {
			t.Fatalf("shadow rule's key %q; want %q", snap.keys[1], shadowKey)
		}
		d, _ := settled(r, sh, req, &snap, v, "m", t0.Add(at), true)
		return d
	}
	if d := settle(0, 1, 10, 0, 0, 0, 2, 0, 0, 0); !d.Allowed || d.ShadowDenied() {
		t.Fatalf("1st: got allowed=%v shadow-denied=%v; want true false", d.Allowed, d.ShadowDenied())
	}
	if rec := <-r.recorder.queue; len(rec.keys) != 4 || rec.keys[3] != shadowKey+highWaterSuffix {
		t.Fatalf("1st: recorded in %v; want both rules and their high-water hashes", rec.keys)
	}
	// The replica shows the shadow rule full.
	d := settle(time.Second, 1, 9, 0, 0, 1, 0, 0, 5_000_000, 1)
	if !d.Allowed || !d.ShadowDenied() || d.RetryAfter() != 0 || d.Rules[1].RetryAfter != 5*time.Second {
		t.Fatalf("2nd: got allowed=%v shadow-denied=%v retry-after=%v (shadow %v); want allowed, shadow-denied, none (5s)",
			d.Allowed, d.ShadowDenied(), d.RetryAfter(), d.Rules[1].RetryAfter)
	}
	rec := <-r.recorder.queue
	if len(rec.keys) != 2 || rec.keys[0] != Key("p", "acme", "r") || rec.keys[1] != Key("p", "acme", "r")+highWaterSuffix || len(rec.args) != 5 {
		t.Fatalf("2nd: recorded %v %v; want the enforced rule only", rec.keys, rec.args)
	}
	if lg := sh.logs[shadowKey]; lg != nil && len(lg.entries) != 0 {
		t.Fatalf("shadow rule's pending log %+v; want none (the 1st seen by the replica, the 2nd not taken)", lg)
	}
	// The replica shows room, but this gateway fills the rule while the
	// script runs.
	snap := r.snapshot(sh, req, t0.Add(2*time.Second))
	sh.logs[shadowKey].append(pendingEntry{cost: 2, at: t0.Add(2 * time.Second)})
	d, _ = settled(r, sh, req, &snap, []int64{1, 8, 0, 0, 0, 1, 0, 0, 0}, "n", t0.Add(2*time.Second), true)
	if !d.Allowed || !d.Rules[1].Denied() || d.Rules[0].Denied() {
		t.Fatalf("3rd: got allowed=%v states %+v; want allowed, the shadow rule denied", d.Allowed, d.States())
	}
}
