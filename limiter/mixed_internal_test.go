package limiter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// mixedBatch is a batch of several tenants' decisions, their names ending
// in suffix: three of one log with room for two; one of a sliding
// window; two with two rules, a log with room for one and a window; and,
// between them, a replay, which shares no call.
func mixedBatch(suffix string) []*op {
	log2 := Rule{Name: "l", Limit: 2, Window: time.Minute}
	log1 := Rule{Name: "l", Limit: 1, Window: time.Minute}
	win := testWindow("w", 5, 1)
	var batch []*op
	batch = append(batch, decideOps("a"+suffix, log2, 3)...)
	replay := decideOps("r"+suffix, log2, 1)[0]
	replay.replay = true
	batch = append(batch, replay)
	batch = append(batch, decideOps("b"+suffix, win, 1)...)
	for _, o := range decideOps("c"+suffix, log1, 2) {
		o.req.Rules = []Rule{log1, win}
		batch = append(batch, o)
	}
	for i, o := range batch {
		o.seq = uint64(i + 1) // one member base per decision of the batch
		o.now = time.Now().UnixMicro()
	}
	return batch
}

// TestMixedCallDecidesEachGroupAsAlone: off Cluster, the first sends of a
// batch, whatever their tenants and rules, go in one call of decide.lua;
// each is answered as the same batch is without mixing (each group of
// the same keys in a call of its own): the same admissions, remaining,
// and resets and retries within the time between the two. The replay
// goes in a call of its own.
func TestMixedCallDecidesEachGroupAsAlone(t *testing.T) {
	t.Parallel()
	c, l := laneFixture(t, true)
	before := commandCalls(t, c, "evalsha")
	mixed := mixedBatch("-mixed")
	l.serve(mixed)
	if calls := commandCalls(t, c, "evalsha") - before; calls != 2 {
		t.Fatalf("a batch of 3 groups and a replay took %d calls; want 2: one mixed, the replay's", calls)
	}
	before = commandCalls(t, c, "evalsha")
	apart := mixedBatch("-apart")
	l.noMix = true
	l.serve(apart)
	l.noMix = false
	if calls := commandCalls(t, c, "evalsha") - before; calls != 4 {
		t.Fatalf("the same batch unmixed took %d calls; want 4", calls)
	}
	var admitted string
	for i := range mixed {
		a, b := replyOf(t, mixed[i]), replyOf(t, apart[i])
		admitted += fmt.Sprint(a[0])
		if a[0] != b[0] {
			t.Errorf("decision %d (%s): allowed %d mixed, %d apart", i, mixed[i].req.Tenant, a[0], b[0])
		}
		for r := 0; 1+3*r < len(a); r++ {
			if a[1+3*r] != b[1+3*r] {
				t.Errorf("decision %d, rule %d: remaining %d mixed, %d apart", i, r, a[1+3*r], b[1+3*r])
			}
			for j := range 2 {
				if d := time.Duration(a[2+3*r+j]-b[2+3*r+j]) * time.Microsecond; d < -2*time.Second || d > 2*time.Second {
					t.Errorf("decision %d, rule %d: reset or retry %d mixed, %d apart", i, r, a[2+3*r+j], b[2+3*r+j])
				}
			}
		}
		o := mixed[i]
		if r := o.req.Rules[0]; r.algo() == algoLog {
			recorded := c.ZScore(context.Background(), ruleKey("p", o.req.Tenant, r, 0), member(o)+":1").Err() == nil
			if recorded != (a[0] == 1) {
				t.Errorf("decision %d (%s): allowed %d, recorded %v", i, o.req.Tenant, a[0], recorded)
			}
		}
	}
	// a: room for two of three; the replay; b; c: room for one of two.
	if admitted != "1101110" {
		t.Errorf("admitted %s; want 1101110", admitted)
	}
	for _, o := range append(mixed, apart...) {
		o.release()
	}
}

// TestMixedCallKeepsAFailingGroupToItself: a group of a mixed call that
// fails in Redis (its key of another type) fails its own decisions alone,
// with Redis' error, sent again in a call of its own; the other groups of
// the call are decided and recorded. So too when the call was first
// answered NOSCRIPT and sent again after SCRIPT LOAD.
func TestMixedCallKeepsAFailingGroupToItself(t *testing.T) {
	t.Parallel()
	c, l := laneFixture(t, true)
	ctx := context.Background()
	rule := Rule{Name: "l", Limit: 5, Window: time.Minute}
	if err := c.Set(ctx, ruleKey("p", "broken", rule, 0), "not a log", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, flushed := range []bool{false, true} {
		if flushed {
			if err := c.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		var batch []*op
		for i, tenant := range []string{"ok1", "broken", "broken", "ok2"} {
			o := decideOps(tenant, rule, 1)[0]
			o.instance = fmt.Sprintf("gw-%v", flushed)
			o.seq = uint64(i + 1)
			batch = append(batch, o)
		}
		before := commandCalls(t, c, "evalsha")
		l.serve(batch)
		want := int64(2) // the mixed call, and the failed group's alone
		if flushed {
			want = 3 // and first the mixed call answered NOSCRIPT
		}
		if calls := commandCalls(t, c, "evalsha") - before; calls != want {
			t.Errorf("scripts flushed %v: %d calls; want %d", flushed, calls, want)
		}
		for _, o := range batch {
			<-o.done
			var ce *CallError
			switch {
			case o.req.Tenant == "broken" && (!errors.As(o.err, &ce) || !strings.Contains(o.err.Error(), "WRONGTYPE")):
				t.Errorf("scripts flushed %v, broken: %v; want a CallError with Redis' WRONGTYPE", flushed, o.err)
			case o.req.Tenant != "broken" && (o.err != nil || o.reply[0] != 1):
				t.Errorf("scripts flushed %v, %s: %v, allowed %d; want admitted beside the broken group", flushed, o.req.Tenant, o.err, o.reply[0])
			case o.req.Tenant != "broken" && c.ZScore(ctx, ruleKey("p", o.req.Tenant, rule, 0), member(o)+":1").Err() != nil:
				t.Errorf("scripts flushed %v, %s: admitted, not recorded", flushed, o.req.Tenant)
			}
			o.release()
		}
	}
}
