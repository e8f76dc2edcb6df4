package limiter

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// On Redis Cluster one script call reaches one slot, and a shared limit's
// keys are hash-tagged with its scope, not the tenant: a request with
// shared limits is decided in one call per run of rules of one hash tag
// (the tenant's rules come first, then each scope's), in order, each on
// its own slot. A call that refuses refuses the request: the later runs
// are not asked (their states are Undecided), and what the earlier calls
// recorded is taken back by undo.lua on their slots. Between a record and
// its undo the tenant's count is one request higher, which may refuse a
// concurrent request that would have fit, never admit one that would not;
// an undo that fails leaves the record to leave its window.

var (
	undoneCalls = metrics.NewCounter(`l1gw_cluster_undo_total{result="undone"}`)
	undoFailed  = metrics.NewCounter(`l1gw_cluster_undo_total{result="failed"}`)
)

// mixedTags reports whether rules count under more than one hash tag: a
// tenant's rules and a shared limit, or two scopes.
func mixedTags(rules []Rule) bool {
	for i := 1; i < len(rules); i++ {
		if rules[i].Scope != rules[0].Scope {
			return true
		}
	}
	return false
}

// runEnd is where the run of rules of rules[lo]'s hash tag ends.
func runEnd(rules []Rule, lo int) int {
	hi := lo + 1
	for hi < len(rules) && rules[hi].Scope == rules[lo].Scope {
		hi++
	}
	return hi
}

// decideSplit decides req, whose rules count under more than one hash
// tag, one call per run as decision seq, and merges the answers into the
// Decision one call would have given, in d.
func (s *RedisStore) decideSplit(req Request, seq uint64, now time.Time, d *Decision) error {
	*d = Decision{Allowed: true, N: len(req.Rules), Seq: seq}
	var rd Decision
	for lo := 0; lo < len(req.Rules); {
		hi := runEnd(req.Rules, lo)
		run := Request{Tenant: req.Tenant, Rules: req.Rules[lo:hi]}
		if err := s.decideCall(run, ruleTag(req.Tenant, req.Rules[lo]), seq, now, &rd); err != nil {
			s.undoRuns(req, seq, now, d, lo)
			*d = Decision{}
			return fmt.Errorf("decide for %s (%s): %w", req.Tenant, ruleTag(req.Tenant, req.Rules[lo]), err)
		}
		copy(d.Rules[lo:hi], rd.Rules[:hi-lo])
		if rd.Degraded && !d.Degraded {
			d.Degraded, d.Why = true, rd.Why
		}
		if !rd.Allowed {
			for i := hi; i < len(req.Rules); i++ {
				d.Rules[i] = RuleState{Undecided: true}
			}
			s.undoRuns(req, seq, now, d, lo)
			d.Allowed, d.Degraded, d.Why = false, false, ""
			return nil
		}
		lo = hi
	}
	return nil
}

// undoRuns takes back what decision seq recorded in req's rules before
// end, every run of them admitted, and puts in d the states undo.lua
// answers. A run whose undo fails keeps its record, and its state.
func (s *RedisStore) undoRuns(req Request, seq uint64, now time.Time, d *Decision, end int) {
	for lo := 0; lo < end; {
		hi := runEnd(req.Rules, lo)
		if err := s.undoCall(req.Rules[lo:hi], ruleTag(req.Tenant, req.Rules[lo]), seq, now, d.Rules[lo:hi]); err != nil {
			undoFailed.Inc()
		} else {
			undoneCalls.Inc()
		}
		lo = hi
	}
}

// undoCall runs undo.lua for rules (one hash tag, tag) decided as seq at
// now, whose states were states, and updates their remaining and reset.
func (s *RedisStore) undoCall(rules []Rule, tag string, seq uint64, now time.Time, states []RuleState) error {
	o := getOp()
	o.kind, o.prefix, o.instance, o.seq, o.budget = opUndo, s.prefix, s.instance, seq, s.budget
	o.req = Request{Tenant: tag, Rules: rules}
	o.now = now.UnixMicro()
	if !logOnly(rules) {
		fillPeriods(&s.zones, rules, now, &o.periods)
	}
	for i := range rules {
		o.undo[i] = -1
		if !states[i].Denied() { // in an admitted run, recorded
			o.undo[i] = states[i].Reset.Microseconds()
		}
	}
	o, _, err := carry(s.primary, o)
	if err != nil {
		return err
	}
	defer o.release()
	if o.n != 2*len(rules) {
		return fmt.Errorf("undo script reply has %d values; want %d", o.n, 2*len(rules))
	}
	for i := range rules {
		states[i].Remaining = o.reply[2*i]
		states[i].Reset = time.Duration(o.reply[2*i+1]) * time.Microsecond
	}
	return nil
}
