package limiter

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// ErrBudget means Redis did not answer within the budget: from the moment
// the call was on the wire, nothing came back on its connection (see
// pipe.go for how that is told apart from a gateway too busy to read).
var ErrBudget = errors.New("limiter: Redis did not answer within the budget")

// ErrOverload means the gateway has more decisions waiting to be sent than
// it can carry, or one waited longer than the queue timeout. It is not a
// Redis fault: the request is shed, never admitted unchecked.
var ErrOverload = errors.New("limiter: too many decisions waiting for Redis")

// monoStart is the origin of monoNow.
var monoStart = time.Now()

// monoNow is the time in ns since monoStart by the monotonic clock: how
// long an op has waited, which a step of the wall clock does not change
// (a step forward past queue_timeout would shed every op queued, one back
// would shed none).
func monoNow() int64 { return mono(time.Now()) }

// mono is t by monoNow's clock; t must carry a monotonic reading (a
// time.Now).
func mono(t time.Time) int64 { return int64(t.Sub(monoStart)) }

// errQueueFull is the ErrOverload of a decision its pipe's queue had no
// room for: shed at once, asking nothing of the node.
var errQueueFull = fmt.Errorf("%w: the queue is full", ErrOverload)

// CallError is the failure of one call to Redis, a batch of decisions on
// one connection: every decision it carried fails with the same ID, so a
// caller counting failures (the breaker) can count the call once.
type CallError struct {
	// ID tells calls apart; a later call has a larger ID.
	ID  uint64
	Err error
}

// Error is the failure's message.
func (e *CallError) Error() string { return e.Err.Error() }

// Unwrap is the failure: ErrBudget, a reply error, a connection error.
func (e *CallError) Unwrap() error { return e.Err }

var calls atomic.Uint64

// callError wraps err as the failure of a new call, and counts it in
// l1gw_redis_errors_total.
func callError(err error) *CallError {
	if c := redisErrors[ErrorKind(err)]; c != nil {
		c.Inc()
	}
	return &CallError{ID: calls.Add(1), Err: err}
}

// opKind is which script an op runs.
type opKind uint8

const (
	opDecide opKind = iota // decide.lua on the primary
	opPeek                 // peek.lua (EVALSHA_RO) on a replica
	opUndo                 // undo.lua on the primary (split.go)
)

// op is one script call carried by a pipe. It is pooled: two parties hold
// it, the caller waiting on done and the pipe that carries it, and the
// last to let go puts it back.
type op struct {
	kind opKind
	// req is the request, or one group of it (split.go): its Tenant is
	// then the group's hash tag, which the call is routed by.
	req    Request
	prefix string
	// decide: the member is instance:seq; replay asks the script to look
	// for its own record first (a call sent again after a lost reply).
	instance string
	seq      uint64
	replay   bool
	// asking: send ASKING first (a Cluster slot being migrated).
	asking bool
	// decide: each fixed rule's current period, by the gateway's clock at
	// now (unix µs); zero for the other rules.
	now     int64
	periods [MaxRules]span
	// undo: per rule, -1 when decide.lua did not record the request in
	// it, else the reset it answered (µs).
	undo [MaxRules]int64
	// peek: the script's keys and arguments.
	keys []string
	args []any
	// budget is how long Redis may stay silent on this call.
	budget time.Duration
	queued int64 // when do queued it (monoNow)

	state atomic.Int32 // opFree in the pool; opPending from getOp until settled
	refs  atomic.Int32
	done  chan struct{}
	n     int
	reply [maxReply]int64
	err   error
}

const (
	// opFree is the zero value, so a pooled op is never pending: a stale
	// reference to it (a bug) can neither send nor settle it.
	opFree int32 = iota
	opPending
	opSettled
)

// freeOps holds ops for reuse. Not a sync.Pool: that keeps what a lane
// puts back in the lane's P, where the caller's P (the next Get) cannot
// take it, so a decision would allocate now and then.
var freeOps = make(chan *op, 4096)

func getOp() *op {
	var o *op
	select {
	case o = <-freeOps:
	default:
		o = &op{done: make(chan struct{}, 1)}
	}
	o.state.Store(opPending)
	o.refs.Store(2)
	return o
}

// release lets go of o; the second release puts it back in the pool.
func (o *op) release() {
	if o.refs.Add(-1) != 0 {
		return
	}
	*o = op{done: o.done}
	select {
	case freeOps <- o:
	default: // enough in reserve: let the GC have it
	}
}

// discard puts back an op that was never handed to a pipe.
func (o *op) discard() {
	o.refs.Store(1)
	o.release()
}

// copyRequest makes o the same call as from.
func (o *op) copyRequest(from *op) {
	o.kind, o.req, o.prefix, o.instance, o.seq, o.replay = from.kind, from.req, from.prefix, from.instance, from.seq, from.replay
	o.now, o.periods, o.undo = from.now, from.periods, from.undo
	o.keys, o.args, o.budget = from.keys, from.args, from.budget
}

// settle gives o its outcome and wakes the caller, unless it was settled
// already (the watchdog gave up on it, then the reply came).
func (o *op) settle(reply []int64, err error) bool {
	if !o.state.CompareAndSwap(opPending, opSettled) {
		return false
	}
	o.n = copy(o.reply[:], reply)
	o.err = err
	o.done <- struct{}{}
	return true
}

func (o *op) pending() bool { return o.state.Load() == opPending }

// encode appends o as one command.
func (o *op) encode(b []byte) []byte {
	if o.asking {
		b = appendBulk(appendArray(b, 1), "ASKING")
	}
	if o.kind == opPeek {
		return o.encodePeek(b)
	}
	n, undo := len(o.req.Rules), 0
	hash := decideScript.Hash()
	if o.kind == opUndo {
		undo, hash = n, undoScript.Hash()
	}
	b = appendArray(b, 3+n+2+4*n+undo)
	b = appendBulk(b, "EVALSHA")
	b = appendBulk(b, hash)
	b = appendBulkInt(b, int64(n))
	b = o.appendKeys(b)
	b = o.appendMember(b)
	if o.replay {
		b = appendBulk(b, "1")
	} else {
		b = appendBulk(b, "0")
	}
	b = o.appendRuleArgs(b)
	for i := range undo {
		b = appendBulkInt(b, o.undo[i])
	}
	return b
}

// appendMember appends o's member base, instance:seq, as one argument.
func (o *op) appendMember(b []byte) []byte {
	var m [64]byte
	member := append(m[:0], o.instance...)
	member = append(member, ':')
	member = strconv.AppendUint(member, o.seq, 36)
	return appendBulk(b, member)
}

// shareable reports whether o may share one call with the other first
// sends of the same rules in a batch (decide.lua's 'm'): a decision whose
// rules are all enforced, of any algorithm, neither a replay nor
// redirected.
func (o *op) shareable() bool {
	if o.kind != opDecide || o.replay || o.asking || len(o.req.Rules) == 0 {
		return false
	}
	for _, r := range o.req.Rules {
		if r.Shadow() {
			return false
		}
	}
	return true
}

// sameKey reports whether shareable ops o and p decide the same keys by
// the same rules: equal rules, prefix and hash tags, and for a fixed rule
// the same period.
func (o *op) sameKey(p *op) bool {
	if o.prefix != p.prefix || len(o.req.Rules) != len(p.req.Rules) {
		return false
	}
	for i, r := range o.req.Rules {
		if r != p.req.Rules[i] || o.periods[i].start != p.periods[i].start ||
			ruleTag(o.req.Tenant, r) != ruleTag(p.req.Tenant, r) {
			return false
		}
	}
	return true
}

// encodeShared appends ops, shareable and of the same keys, as one call of
// decide.lua, which answers 1 + 3 values per rule for each in turn. A
// fixed rule's time left in its period is the first op's: the lane moves
// each op's reset and retry to its own (roundTrip).
func encodeShared(b []byte, ops []*op) []byte {
	o := ops[0]
	n := len(o.req.Rules)
	b = appendArray(b, 3+n+2+4*n+len(ops))
	b = appendBulk(b, "EVALSHA")
	b = appendBulk(b, decideScript.Hash())
	b = appendBulkInt(b, int64(n))
	b = o.appendKeys(b)
	b = appendBulk(b, "")
	b = appendBulk(b, "m")
	b = o.appendRuleArgs(b)
	for _, p := range ops {
		b = p.appendMember(b)
	}
	return b
}

// encodeMixed appends groups of shareable ops, each group of the same keys
// (as encodeShared takes them) and of its own keys, as one call of
// decide.lua ('g'): sizes holds each group's length, and ops the groups
// in turn. Its keys may be in different slots: never for Cluster.
func encodeMixed(b []byte, ops []*op, sizes []int) []byte {
	keys, args := 0, 3
	for i, off := 0, 0; i < len(sizes); off, i = off+sizes[i], i+1 {
		m := len(ops[off].req.Rules)
		keys += m
		args += 2 + 4*m + sizes[i]
	}
	b = appendArray(b, 3+keys+args)
	b = appendBulk(b, "EVALSHA")
	b = appendBulk(b, decideScript.Hash())
	b = appendBulkInt(b, int64(keys))
	for i, off := 0, 0; i < len(sizes); off, i = off+sizes[i], i+1 {
		b = ops[off].appendKeys(b)
	}
	b = appendBulk(b, "")
	b = appendBulk(b, "g")
	b = appendBulkInt(b, int64(len(sizes)))
	for i, off := 0, 0; i < len(sizes); off, i = off+sizes[i], i+1 {
		o := ops[off]
		b = appendBulkInt(b, int64(len(o.req.Rules)))
		b = appendBulkInt(b, int64(sizes[i]))
		b = o.appendRuleArgs(b)
		for _, p := range ops[off : off+sizes[i]] {
			b = p.appendMember(b)
		}
	}
	return b
}

// appendKeys appends the key of each of o's rules.
func (o *op) appendKeys(b []byte) []byte {
	var sfx [32]byte
	for i, r := range o.req.Rules {
		b = appendKeyArg(b, o.prefix, o.req.Tenant, r, appendKeySuffix(sfx[:0], r, o.periods[i].start))
	}
	return b
}

// appendRuleArgs appends the four arguments of each of o's rules: its
// window (a fixed rule's µs left in its period), limit, cost and mode.
func (o *op) appendRuleArgs(b []byte) []byte {
	for i, r := range o.req.Rules {
		if r.algo() == algoFixed {
			b = appendBulkInt(b, o.periods[i].end-o.now)
		} else {
			b = appendBulkInt(b, r.Window.Microseconds())
		}
		b = appendBulkInt(b, r.Limit)
		b = appendBulkInt(b, r.CostOrOne())
		b = appendBulkInt(b, modeArg(r))
	}
	return b
}

// modeArg is a rule's mode as decide.lua takes it: 1 shadow (0 enforced)
// plus 2 x the algorithm; a sliding log's is 0 or 1, as peek.lua takes it.
func modeArg(r Rule) int64 {
	m := 2 * int64(r.algo())
	if r.Shadow() {
		m++
	}
	return m
}

func (o *op) encodePeek(b []byte) []byte {
	b = appendArray(b, 3+len(o.keys)+len(o.args))
	b = appendBulk(b, "EVALSHA_RO")
	b = appendBulk(b, peekScript.Hash())
	b = appendBulkInt(b, int64(len(o.keys)))
	for _, k := range o.keys {
		b = appendBulk(b, k)
	}
	for _, a := range o.args {
		switch v := a.(type) {
		case string:
			b = appendBulk(b, v)
		case int64:
			b = appendBulkInt(b, v)
		case int:
			b = appendBulkInt(b, int64(v))
		default:
			panic("BUG: peek argument of an unexpected type")
		}
	}
	return b
}

// script is the source of o's script, for SCRIPT LOAD after NOSCRIPT.
func (o *op) script() string {
	switch o.kind {
	case opPeek:
		return peekSrc
	case opUndo:
		return undoSrc
	}
	return decideSrc
}
