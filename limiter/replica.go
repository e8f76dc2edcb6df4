package limiter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// replicaDecider is replica consistency: a request is decided by a
// read-only script on the local replica, counting this gateway's own
// admissions that the replica may not show yet (pending), and the admission
// is recorded on the primary asynchronously by a recorder. The primary's
// latency leaves the request path; what other gateways admitted in the
// last replication lag is not seen, which is the over-admission this mode
// trades for latency.
type replicaDecider struct {
	s        *RedisStore
	shards   [pendingShards]pendingShard
	recorder *recorder
	// skipUntil (unix ns): the replica failed a read; until then decisions
	// go straight to the primary rather than wait on it again.
	skipUntil atomic.Int64
}

// replicaShare is the part of the budget the replica's read may take;
// the primary, asked when the replica fails, has its whole budget. A
// stalled replica costs a decision at most this much latency, never a
// fall-open while the primary answers.
const replicaShare = 3 // budget/3

// replicaSkip is how long decisions skip a replica that failed a read.
const replicaSkip = 500 * time.Millisecond

type pendingShard struct {
	mu        sync.Mutex
	logs      map[string]*pendingLog // by Redis key
	lastSweep time.Time
	// ord counts the entries ever appended to the shard's logs: a new
	// log's ordinals start there, above those of any log it replaces.
	ord int64
	// enq counts the records the shard queued for the recorder, in
	// order; written is the last of them the recorder has sent (written
	// or failed), set by the recorder.
	enq     int64
	written atomic.Int64
}

// pendingLog is one rule's admissions not known to be on the replica,
// oldest first.
type pendingLog struct {
	entries  []pendingEntry
	appended int64         // cost ever appended: tells a decision what was admitted while it read
	dropped  uint64        // entries ever removed from the front
	window   time.Duration // the rule's window, for sweeping
	next     int64         // the next entry's ordinal
	// readers counts the decisions whose snapshot holds the log and that
	// have not settled, and the decisions on the primary holding it
	// (hold): a log is never removed while one reads it, since what was
	// admitted in it meanwhile (appended) is theirs to count, even once a
	// later read showed it and it was forgotten.
	readers int
	// inflight is the cost of the decisions on the primary in flight in
	// the log (hold): each may admit without seeing what a replica read's
	// decision admits meanwhile, so such a decision counts it.
	inflight int64
	// mixed: the entries are not all of one cost (a rule's cost changed),
	// so a snapshot sends each one's cost.
	mixed bool
	// unrecorded are admissions whose record the recorder's full queue
	// dropped (out of the ordinals, which a later record's high-water
	// mark would otherwise show), and those whose record failed once a
	// mark passed them (lost): counted by every decision (settle) until
	// they leave the window.
	unrecorded []pendingEntry
}

type pendingEntry struct {
	// costArg is the cost, boxed once, when admitted, for every snapshot
	// that sends it.
	costArg any
	cost    int64
	ord     int64 // consecutive in its log (pendingLog.append)
	at      time.Time
	// lost: its record failed, so the replica never shows it, whatever a
	// later record's high-water mark says (pendingShard.lost).
	lost bool
}

// pendingShards spreads the pending logs over locks.
const pendingShards = 16

// pendingSweep is how often a shard drops the logs of keys no longer decided.
const pendingSweep = 10 * time.Second

// maxPending bounds a rule's pending entries; past it, the request is
// decided exactly on the primary.
const maxPending = 512

// maxPendingPrimary bounds the entries a decision on the primary adds to
// a pending log (release): those decisions read no replica, so nothing of
// what they add is forgotten but by the window. Past it, such an admission is
// not pended, and a replica read within its replication lag misses it.
// Twice maxPending: a log at it goes back to replica reads once half of it
// has left the window, as a log held at maxPending does once one entry has.
const maxPendingPrimary = 2 * maxPending

func newReplicaDecider(s *RedisStore, queue int) *replicaDecider {
	r := &replicaDecider{s: s, recorder: newRecorder(s.clients, queue)}
	for i := range r.shards {
		r.shards[i].logs = make(map[string]*pendingLog)
	}
	return r
}

// snapshot is what one decision read of the pending logs: logs holds the
// log of each rule, made empty if there was none, which stays in the shard
// until the decision lets go of it (settle or letGo).
type snapshot struct {
	keys     []string
	args     []any
	logs     [MaxRules]*pendingLog
	appended [MaxRules]int64
	dropped  [MaxRules]uint64
	full     bool  // a pending log is at its bound
	enq      int64 // the shard's records queued by then
}

// decide decides req into d; cacheable is false when a denial's
// retry-after is not known to be a lower bound.
func (r *replicaDecider) decide(_ context.Context, req Request, now time.Time, d *Decision) (cacheable bool, err error) {
	if r.recorder.reserve() {
		defer r.recorder.unreserve()
	} else if r.recorder.lagging(now, r.commandBound()) {
		// An admission the recorder has no room for would reach no other
		// gateway. The primary takes the records: the gateway is behind,
		// which is no Redis fault (l1gw_overload_total). A recorder
		// waiting on a primary that does not answer it sheds nothing: the
		// decision goes on, marked (recorder), as the breaker and the fail
		// mode see to the primary.
		return false, errRecorderFull
	}
	if !peekable(req.Rules) {
		return r.onPrimary(req, now, d)
	}
	sh := r.shard(req.Tenant)
	snap := r.snapshot(sh, req, now)
	if snap.full {
		// On the primary: decide.lua there counts what the recorder has
		// written, as for a request the replica cannot decide.
		r.letGo(sh, &snap)
		return r.onPrimary(req, now, d)
	}
	var o *op
	if now.UnixNano() < r.skipUntil.Load() {
		err = errReplicaSkipped
	} else {
		o, err = r.s.peek(req, snap.keys, snap.args, r.s.budget/replicaShare)
		switch {
		case errors.Is(err, errQueueFull):
			// The gateway's own queue, full: shed, rather than send the
			// primary what the gateway cannot carry. (A read that waited
			// past the queue timeout may be a slow replica's: as carry
			// judges it, a replica fault.)
			r.letGo(sh, &snap)
			return false, err
		case err != nil && !errors.Is(err, errNoClusterReplica): // that one is the slot's, not the replica's
			r.skipUntil.Store(now.Add(replicaSkip).UnixNano())
		}
	}
	if err != nil {
		// The replica is out: the same read on the primary, with the same
		// pending admissions (the primary shows a prefix of them too, the
		// recorder writing in order), so this gateway's own traffic stays
		// exact; at the primary's latency.
		if !errors.Is(err, errNoClusterReplica) {
			replicaFallbacks.Inc()
		}
		var perr error
		if o, perr = r.s.peekOn(r.s.primary, req, snap.keys, snap.args, r.s.budget); perr != nil {
			// The primary's error is the one that counts (the breaker, an
			// overload): the replica's is only told.
			r.letGo(sh, &snap)
			return false, fmt.Errorf("decide on replica for %s: %v; on the primary: %w", req.Tenant, err, perr)
		}
	}
	defer o.release()
	cacheable = r.settle(sh, req, &snap, o.reply[:o.n], r.s.member(), now, err == nil, d)
	// Admissions that do not reach the primary are unseen by every other
	// gateway: a decision is only as shared as the recorder is healthy.
	if !r.recorder.healthy() {
		d.Degraded, d.Why = true, WhyRecorder
	} else if why := r.s.primaryWhy(req.Tenant, req.Rules); why != "" && d.Allowed {
		d.Degraded, d.Why = true, why // its records land on the primary
	}
	return cacheable, nil
}

// onPrimary decides on the primary a request the replica cannot (one
// with a concurrency limit, a shared limit or a counter rule), or one of
// whose pending logs is at its bound. Its sliding logs may be a plain
// request's too, so it is decided once the recorder has sent what this
// gateway admitted in them (see awaitRecorder: a primary silent meanwhile
// fails it, a recorder behind while the primary answers sheds it), and
// what it records in them joins the pending logs and the recorder's
// queue, for the replica's next read to count. While it is in flight its
// cost counts against every replica read's decision of those logs
// (hold): decide.lua does not see what they admit meanwhile, so they must
// see what it may admit. Without a decision connection to judge the
// primary by, a recorder still behind past the budget leaves the
// decision made anyway, marked degraded (recorder).
func (r *replicaDecider) onPrimary(req Request, now time.Time, d *Decision) (cacheable bool, err error) {
	sh := r.shard(req.Tenant)
	keys := withHighWater(r.s.keys(req.Tenant, req.Rules, now))
	h := r.hold(sh, req, keys, now)
	defer r.release(sh, req, keys, &h, nil, now) // on error (or panic): unadmitted
	late := false
	if h.pending {
		late, err = r.awaitRecorder(req.Tenant, sh, h.enq)
	}
	if err == nil {
		err = r.s.decideOnPrimary(req, now, d)
	}
	if err != nil {
		return false, err
	}
	r.release(sh, req, keys, &h, d, now) // the deferred call then finds nothing held
	if r.unshared(d); late && !d.Degraded {
		d.Degraded, d.Why = true, WhyRecorder
	}
	return !leaseDenied(req.Rules, d), nil
}

// primaryHold is what a decision on the primary holds while in flight:
// the pending log of each pendable rule, read (readers) and charged the
// rule's cost (inflight).
type primaryHold struct {
	held    bool // until released
	logs    [MaxRules]*pendingLog
	enq     int64 // the shard's records queued when the hold began
	pending bool  // a held log had pending entries
}

// hold begins a decision on the primary of req (keys: its keys with their
// high-water hashes): see primaryHold. A replica read's decision that
// settles while it is held counts its cost, which decide.lua may admit
// without seeing that decision's admission; one that settles after counts
// it as admitted meanwhile (appended), or not at all if it was denied.
func (r *replicaDecider) hold(sh *pendingShard, req Request, keys []string, now time.Time) primaryHold {
	var h primaryHold
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h.enq = sh.enq
	sh.maybeSweep(now) // a shard may see only decisions on the primary
	for i, rule := range req.Rules {
		if !pendable(rule) {
			continue
		}
		lg := sh.logs[keys[i]]
		if lg == nil {
			lg = sh.newLog(keys[i], rule)
		}
		lg.expire(now.Add(-rule.Window))
		h.pending = h.pending || len(lg.entries) > 0
		lg.readers++
		lg.inflight += rule.CostOrOne()
		h.logs[i], h.held = lg, true
	}
	return h
}

// release ends hold h, once (a second call does nothing). If d (nil
// when the decision failed) admitted, what it recorded on the primary
// joins the pending logs and, with their ordinals, the recorder's queue
// (record.lua adds no member twice), up to maxPendingPrimary entries a
// log: those decisions read no replica, so nothing of what they add is
// forgotten but by the window.
func (r *replicaDecider) release(sh *pendingShard, req Request, keys []string, h *primaryHold, d *Decision, now time.Time) {
	if !h.held {
		return
	}
	h.held = false
	n := len(req.Rules)
	var rec record
	var hw []string
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for i, rule := range req.Rules {
		lg := h.logs[i]
		if lg == nil {
			continue
		}
		h.logs[i] = nil
		lg.inflight -= rule.CostOrOne()
		if d != nil && d.Allowed {
			missed(d, i, rule, lg.unseenCost())
		}
		if d != nil && d.Allowed && !d.Rules[i].Denied() && len(lg.entries) < maxPendingPrimary {
			if rec.args == nil {
				rec.args = []any{r.s.memberOf(d.Seq), r.s.instance}
			}
			_, ord := sh.add(lg, keys[i], rule, now)
			rec.keys, hw = append(rec.keys, keys[i]), append(hw, keys[n+i])
			rec.args = append(rec.args, rule.Window.Microseconds(), rule.CostOrOne(), ord)
		}
		sh.unread(keys[i], lg)
	}
	if len(hw) == 0 {
		return
	}
	rec.keys = append(rec.keys, hw...)
	// decide.lua wrote the members: if the queue drops the record, a later
	// record's high-water mark shows them rightly, as written before it.
	r.queue(sh, rec)
}

// missed counts against rule i of d, admitted on the primary, the cost of
// this gateway's admissions the primary never got (unseen). Past its
// limit by them, d is not exact: decide.lua wrote its members, so it
// stays admitted, marked degraded (recorder).
func missed(d *Decision, i int, rule Rule, unseen int64) {
	if unseen == 0 {
		return
	}
	st := &d.Rules[i]
	if st.Remaining < unseen && !rule.Shadow() && !d.Degraded {
		d.Degraded, d.Why = true, WhyRecorder
	}
	st.Remaining = max(st.Remaining-unseen, 0)
}

// pendable: a rule whose records a replica read counts, a tenant's
// sliding log (a lease, a shared limit or a counter never is).
func pendable(r Rule) bool { return r.algo() == algoLog && !r.Lease && r.Scope == "" }

// add appends an admission in rule to lg, the pending log at key
// (made, and ordered after every log of sh so far, when nil), and returns
// the log and the entry's ordinal. Called with sh.mu held.
func (sh *pendingShard) add(lg *pendingLog, key string, rule Rule, now time.Time) (*pendingLog, int64) {
	if lg == nil {
		lg = sh.newLog(key, rule)
	}
	sh.ord++
	return lg, lg.append(pendingEntry{costArg: rule.CostOrOne(), cost: rule.CostOrOne(), at: now})
}

// newLog makes the empty pending log of rule at key, its ordinals after
// those of every log of sh so far (so after any log it replaces). Called
// with sh.mu held.
func (sh *pendingShard) newLog(key string, rule Rule) *pendingLog {
	lg := &pendingLog{window: rule.Window, next: sh.ord}
	sh.logs[key] = lg
	return lg
}

// letGo ends a decision's hold on the logs of its snapshot, unsettled.
func (r *replicaDecider) letGo(sh *pendingShard, snap *snapshot) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r.letGoLocked(sh, snap)
}

// letGoLocked is letGo with sh.mu held: a log left empty and unread goes.
func (r *replicaDecider) letGoLocked(sh *pendingShard, snap *snapshot) {
	for i, lg := range snap.logs {
		if lg == nil {
			continue
		}
		snap.logs[i] = nil
		sh.unread(snap.keys[i], lg)
	}
}

// unread ends one decision's hold on lg, the log at key: left empty and
// unread, it goes. Called with sh.mu held.
func (sh *pendingShard) unread(key string, lg *pendingLog) {
	if lg.readers--; lg.readers == 0 && lg.empty() && sh.logs[key] == lg {
		delete(sh.logs, key)
	}
}

// queue hands rec, the shard's next record, to the recorder; awaitRecorder
// waits on it by its sequence. It reports whether the recorder took it:
// if not (its queue full), the caller takes the entries rec records out
// of their logs' ordinals (pendingLog.unrecord), unless their members are
// written already (release). Called with sh.mu held.
func (r *replicaDecider) queue(sh *pendingShard, rec record) bool {
	rec.sh, rec.seq = sh, sh.enq+1
	if !r.recorder.enqueue(rec) {
		return false
	}
	sh.enq = rec.seq
	return true
}

// awaitRecorder waits until the recorder has sent every record sh had
// queued when a hold began (enq): before a decision on the primary, which
// counts only what the recorder has written (onPrimary: a pending log at
// its bound, or a request the replica cannot decide). While the recorder
// gets on, or the primary answered its decision connections within the
// last budget, it waits on: a recorder behind while the primary answers
// is late for the gateway's own reasons (a busy CPU), which are no Redis
// fault, and past the queue timeout the decision is shed (ErrOverload),
// as a decision queued that long is. A primary found silent, by its
// decision connections' watchdog or by a read asked of it once the
// recorder has written no record for a budget (one caller asks at a time),
// fails the decision (ErrBudget, or the read's error): within about two
// budgets, not the three of waiting, asking, then deciding anyway.
// Without a decision connection to judge by (p nil), the decision is made
// anyway past the budget, marked (late).
func (r *replicaDecider) awaitRecorder(tenant string, sh *pendingShard, enq int64) (late bool, err error) {
	if sh.written.Load() >= enq {
		return false, nil
	}
	p, _ := r.s.primary.pipeFor(tenant)
	start := time.Now()
	// When the recorder last wrote a record, any shard's: the primary
	// takes them. (A failed record moves sh.written too.)
	movedAt, wrote := start, r.recorder.lastWritten.Load()
	for wait := 100 * time.Microsecond; sh.written.Load() < enq; wait = min(2*wait, 5*time.Millisecond) {
		now := time.Now()
		if w := r.recorder.lastWritten.Load(); w != wrote {
			wrote, movedAt = w, now
		}
		switch {
		case p == nil:
			if now.Sub(start) > r.s.budget {
				return true, nil
			}
		case p.silentAt.Load() >= start.UnixNano():
			return true, callError(fmt.Errorf("%w: the primary went silent while the recorder of %s was behind", ErrBudget, tenant))
		case now.Sub(start) > p.cfg.queueTimeout:
			return true, fmt.Errorf("limiter: the recorder of %s is %v behind while the primary answers: %w",
				tenant, now.Sub(start).Round(time.Millisecond), ErrOverload)
		case now.Sub(movedAt) <= r.s.budget:
			// the recorder gets on: wait on
		case p.repliedAt.Load() >= now.Add(-r.s.budget).UnixNano():
			// the primary answered lately: wait on
		case p.asking.CompareAndSwap(false, true):
			err := r.s.answers(tenant)
			p.asking.Store(false)
			if err != nil {
				return true, err // ErrOverload: the gateway's queue; any other: Redis'
			}
		}
		time.Sleep(wait)
	}
	return false, nil
}

// commandBound is how long one command may take on the primary's pool
// (redis.read_timeout), at least the budget: the recorder's batches go
// there.
func (r *replicaDecider) commandBound() time.Duration {
	if r.s.clients == nil {
		return r.s.budget
	}
	return max(r.s.clients.opts.ReadTimeout, r.s.budget)
}

// errRecorderFull sheds a decision the recorder's queue has no room for.
var errRecorderFull = fmt.Errorf("limiter: the recorder's queue is full: this gateway writes its admissions to the primary slower than it makes them: %w", ErrOverload)

// errReplicaSkipped: the replica failed a read lately and is not asked.
var errReplicaSkipped = errors.New("limiter: the replica is skipped after a failed read")

// unshared marks a decision made on the primary while the recorder fails:
// the primary lacks this gateway's admissions that did not reach it.
func (r *replicaDecider) unshared(d *Decision) {
	if !d.Degraded && !r.recorder.healthy() {
		d.Degraded, d.Why = true, WhyRecorder
	}
}

func (r *replicaDecider) shard(tenant string) *pendingShard {
	return &r.shards[tenantHash(tenant)%pendingShards]
}

// snapshot copies the pending logs of req's rules into the script's
// arguments, dropping entries older than their window. A log of one cost
// goes as its first ordinal, its length and the cost; peek.lua finds how
// many of it the replica shows in the high-water hash. A mixed one goes as
// its first ordinal, its length and each entry's cost, judged by the same
// hash.
func (r *replicaDecider) snapshot(sh *pendingShard, req Request, now time.Time) snapshot {
	s := snapshot{keys: withHighWater(r.s.keys(req.Tenant, req.Rules, now))}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s.enq = sh.enq
	sh.maybeSweep(now)
	n := 1 + 8*len(req.Rules)
	for i := range req.Rules {
		if lg := sh.logs[s.keys[i]]; lg != nil && lg.mixed {
			n += len(lg.entries)
		}
	}
	s.args = make([]any, 1, n)
	s.args[0] = r.s.instance
	for i, rule := range req.Rules {
		lg := sh.logs[s.keys[i]]
		if lg == nil {
			lg = sh.newLog(s.keys[i], rule)
		}
		lg.expire(now.Add(-rule.Window))
		lg.readers++
		s.logs[i], s.appended[i], s.dropped[i] = lg, lg.appended, lg.dropped
		s.args = append(s.args, rule.Window.Microseconds(), rule.Limit, rule.CostOrOne(), modeArg(rule))
		if len(lg.entries) == 0 {
			s.args = append(s.args, 0)
			continue
		}
		s.full = s.full || len(lg.entries) >= maxPending
		if !lg.mixed {
			s.args = append(s.args, -1, lg.entries[0].ord, len(lg.entries), lg.entries[0].costArg)
			continue
		}
		s.args = append(s.args, -2, lg.entries[0].ord, len(lg.entries))
		for _, e := range lg.entries {
			s.args = append(s.args, e.costArg)
		}
	}
	return s
}

// withHighWater is keys, then each key's high-water hash (record.lua):
// the keys of peek.lua and record.lua.
func withHighWater(keys []string) []string {
	out := make([]string, 2*len(keys))
	copy(out, keys)
	for i, k := range keys {
		out[len(keys)+i] = k + highWaterSuffix
	}
	return out
}

// highWaterSuffix follows a sliding log's key in its high-water hash's.
// It ends in a colon, as no rule's key does (a rule's name or a counter's
// period ends it), so it is never another key: not even that of a lease
// named "hw" beside a rule named "lease".
const highWaterSuffix = ":hw:"

// settle turns the script's reply into the decision, under the shard lock:
// it forgets the pending entries the replica shows, re-checks against what
// this gateway admitted while the script ran, and records an admission in
// the pending logs and the recorder's queue (in the same order, under the
// same lock: the script relies on the replica showing the oldest first).
// It puts the decision in d. cacheable is false when a retry-after is not
// known to be a lower bound.
func (r *replicaDecider) settle(sh *pendingShard, req Request, snap *snapshot, v []int64, member string, now time.Time, onReplica bool, d *Decision) (cacheable bool) {
	parsePeek(req.Rules, v, d)
	cacheable = true
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var logs [MaxRules]*pendingLog
	defer r.letGoLocked(sh, snap)
	for i, rule := range req.Rules {
		st := &d.Rules[i]
		lg := snap.logs[i] // the rule's still: kept while read (readers)
		// Admitted by this gateway while the script ran: all of it, though
		// a later read may have shown it and had it forgotten since; what
		// the recorder could not take, which no read shows; and what the
		// decisions on the primary in flight may admit.
		extra := lg.appended - snap.appended[i] + lg.unrecordedCost() + lg.inflight
		if shown := snap.dropped[i] + uint64(v[4+4*i]); onReplica {
			// What the replica shows, it keeps. An entry whose record
			// failed moves to unrecorded: counted here by what forget
			// returns, by unrecordedCost from the next decision on.
			extra += lg.forget(shown)
		} else {
			// What only the primary shows (a fallback read) stays pending:
			// the replica may not have it yet when it is asked next. Its
			// failed entries the mark took for shown count all the same.
			extra += lg.lostUpTo(shown)
		}
		logs[i] = lg
		st.RetryAfter = retryAfter(v[3+4*i], lg, rule.Window, now)
		if oldest, ok := lg.oldest(); ok && (st.Reset == 0 || oldest.Add(rule.Window).Sub(now) < st.Reset) {
			st.Reset = max(oldest.Add(rule.Window).Sub(now), 0)
		}
		if st.Remaining-extra < rule.CostOrOne() && !st.Denied() && (d.Allowed || rule.Shadow()) {
			// Full since the script read: denied (a shadow rule: would be).
			st.RetryAfter = max(st.Reset, time.Millisecond)
			if !rule.Shadow() {
				d.Allowed, cacheable = false, false
			}
		}
		st.Remaining = max(st.Remaining-extra, 0)
	}
	if d.Allowed {
		r.admit(sh, req, snap, d, logs, member, now)
	}
	return cacheable
}

// admit records an admission, with sh locked: in the pending logs and the
// recorder's queue of every rule but the shadow rules that would have
// denied it.
func (r *replicaDecider) admit(sh *pendingShard, req Request, snap *snapshot, d *Decision, logs [MaxRules]*pendingLog, member string, now time.Time) {
	n := len(req.Rules)
	rec := record{keys: snap.keys, args: make([]any, 2, 2+3*n), at: now}
	rec.args[0], rec.args[1] = member, r.s.instance
	var recorded [MaxRules]int
	m := 0
	for i, rule := range req.Rules {
		st := &d.Rules[i]
		if st.Denied() { // only a shadow rule: the request is admitted
			continue
		}
		var ord int64
		logs[i], ord = sh.add(logs[i], snap.keys[i], rule, now)
		st.Remaining = max(st.Remaining-rule.CostOrOne(), 0)
		if st.Reset == 0 {
			st.Reset = rule.Window // this request is the only one counted
		}
		rec.args = append(rec.args, rule.Window.Microseconds(), rule.CostOrOne(), ord)
		recorded[m] = i
		m++
	}
	if m < n { // the record's keys: those of the rules recorded
		rec.keys = make([]string, 2*m)
		for j, i := range recorded[:m] {
			rec.keys[j], rec.keys[m+j] = snap.keys[i], snap.keys[n+i]
		}
	}
	if m > 0 && !r.queue(sh, rec) {
		for _, i := range recorded[:m] {
			logs[i].unrecord()
		}
	}
}

// retryAfter reads the script's retry: µs, or -m when the request fits once
// m units of the pending entries have left the window (their times are
// this gateway's, taken before the primary's).
func retryAfter(v int64, lg *pendingLog, window time.Duration, now time.Time) time.Duration {
	if v >= 0 {
		return time.Duration(v) * time.Microsecond
	}
	if lg == nil {
		return window
	}
	return lg.freedAfter(-v, window, now)
}

// forgetTenant drops the pending entries of a tenant (admin reset), and
// the logs no decision reads.
func (r *replicaDecider) forgetTenant(tenant string) {
	sh := r.shard(tenant)
	prefix := Key(r.s.prefix, tenant, "")
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for k, lg := range sh.logs {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if lg.readers > 0 {
			lg.dropped += uint64(len(lg.entries))
			lg.entries, lg.unrecorded = nil, nil
			continue
		}
		delete(sh.logs, k)
	}
}
