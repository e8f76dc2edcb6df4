package limiter

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
)

// lane is one connection of a pipe and the goroutine that carries batches
// over it, one at a time.
type lane struct {
	p *pipe

	// mu guards what the watchdog reads: the connection, the batch on the
	// wire and the phase with its evidence marks.
	mu       sync.Mutex
	c        *conn
	stats    *batchStats // c's node's
	gen      uint64      // the pipe's gen when c was dialed
	batch    []*op
	phase    lanePhase
	since    time.Time // when the phase began
	sentMark uint64    // c.counters() before the batch was written
	recvMark uint64
	written  time.Time // the earliest the batch was seen written; zero before
	heldSent uint64    // sent at the last check that saw a write's bytes held in the kernel
	lastGot  uint64    // received at the last check that saw it grow
	lastAt   time.Time // when that check was
	dialEv   dialEvidence

	// the lane goroutine's own
	wbuf []byte
	sent []*op
	// calls is how many ops of sent each call carries, in order: more
	// than one when they share it (see roundTrip); groups how many ops
	// each group of the same keys holds, in order, and callGroups how
	// many groups each call holds: more than one for a mixed call.
	calls, groups, callGroups []int
	// grouped and sizes are roundTrip's groups before they are sent, and
	// mix whether each may join a mixed call.
	grouped []*op
	sizes   []int
	mix     []bool
	redo    []*op
	// alone are the ops of a mixed call whose group failed: sent again,
	// each group in a call of its own, for its error.
	alone   []*op
	noMix   bool
	scratch [max(maxReply, sharedReply)]int64
}

// dialEvidence is what the watchdog knows of the dial under way.
type dialEvidence struct {
	sock     syscall.RawConn // the socket, once it exists
	raw      *rawConn        // the connection, once connected
	at       time.Time       // when it connected: the lane ran the handshake from there
	lastGot  uint64          // received at the last check that saw it grow
	lastSent uint64          // sent at the last check that saw it grow
	lastAt   time.Time       // when the last of those checks was
}

type lanePhase uint8

const (
	phaseIdle lanePhase = iota
	phaseDialing
	phaseWriting
	phaseReading
)

func (l *lane) run() {
	defer l.p.wg.Done()
	// Dial at once, every lane, so that a healthy Redis is never dialed
	// under load: a dial has less evidence to be judged on than a batch on
	// the wire (see dialSilence).
	l.dial(nil) //nolint:errcheck // on failure the first batch dials again
	l.setPhase(phaseIdle, nil)
	l.p.dialed.Done()
	batch := make([]*op, 0, maxBatch)
	for {
		select {
		case o := <-l.p.queue:
			// Let the goroutines that are about to queue a decision do so
			// first: a batch as large as the load makes, at no wait.
			runtime.Gosched()
			batch = l.take(append(batch[:0], o))
			l.serve(batch)
		case <-l.p.quit:
			l.mu.Lock()
			if l.c != nil {
				l.c.close()
				l.c = nil
			}
			l.mu.Unlock()
			return
		}
	}
}

// take adds what else is queued, up to a batch, and sheds what waited
// longer than the queue timeout.
func (l *lane) take(batch []*op) []*op {
fill:
	for len(batch) < maxBatch {
		select {
		case o := <-l.p.queue:
			batch = append(batch, o)
		default:
			break fill
		}
	}
	now := monoNow()
	kept := batch[:0]
	for _, o := range batch {
		if time.Duration(now-o.queued) > l.p.cfg.queueTimeout {
			o.settle(nil, ErrOverload)
			o.release()
			continue
		}
		kept = append(kept, o)
	}
	return kept
}

// serve carries one batch and settles every op in it.
func (l *lane) serve(batch []*op) {
	if len(batch) == 0 {
		return
	}
	l.redo, l.alone = l.redo[:0], l.alone[:0] // only ever this batch's ops
	defer func() {
		l.redo, l.alone = l.redo[:0], l.alone[:0]
		l.setPhase(phaseIdle, nil)
		for _, o := range batch {
			o.release()
		}
	}()
	fresh := false
	if l.c != nil && l.gen != l.p.gen.Load() {
		l.drop() // the node moved: dial where it is now
	}
	if l.c == nil {
		if err := l.dial(batch); err != nil {
			settlePending(batch, err)
			return
		}
		fresh = true
	}
	read, err := l.roundTrip(batch)
	if err != nil && !fresh && !read {
		// A pooled connection the node closed (a restart): once more on a
		// new one. The script finds its record if the first write landed,
		// but for the decisions a counter could not tell apart.
		l.drop()
		l.unreplayable(err)
		for _, o := range batch {
			o.replay = true
		}
		if err = l.dial(batch); err == nil {
			_, err = l.roundTrip(batch)
		}
	}
	if err == nil && len(l.redo) > 0 {
		err = l.reload()
	}
	if err == nil && len(l.alone) > 0 {
		// Each failed group alone, for its own error. No mixed call, so
		// nothing joins l.alone meanwhile: it is emptied for reload's
		// sake, which settles what is answered NOSCRIPT twice unless it
		// is in l.alone.
		alone := l.alone
		l.alone = l.alone[:0]
		l.noMix = true
		_, err = l.roundTrip(alone)
		if err == nil && len(l.redo) > 0 {
			err = l.reload() // a SCRIPT FLUSH since the mixed call
		}
		l.noMix = false
	}
	if err != nil {
		l.drop()
		settlePending(batch, err)
	}
	// No op leaves a batch pending: its caller waits for nothing else.
	settlePending(batch, errUnanswered)
	if l.c != nil && l.c.seen.replica {
		// A primary's connection to a replica (a stale slot map: its
		// decisions are answered MOVED) is not kept: the node may be
		// promoted before the next batch, which then dials and sees it
		// (pipe.identified).
		l.drop()
	}
}

// errUnanswered settles an op its batch left unanswered, which no path
// should: a backstop, so that no request waits for good.
var errUnanswered = errors.New("limiter: a decision was left unanswered by its batch")

// errDropped fails the calls of a batch after its connection was dropped.
var errDropped = errors.New("limiter: the connection was dropped: the node can't take decisions")

// unreplayable fails with err, as a failed call, the decisions of the
// failed write that a replay could count twice: those whose rules are
// all counters (a sliding window, a fixed period), a key of which another
// decision of the write also counts (the decisions of a shared group, or
// of one tenant's rate rule on two routes). A counter keeps only the last
// member it counted, so sent again, such a decision would not find its
// record, and be counted twice had the write run. Any other decision is
// sent again, and finds its record in a log, or in its counter.
func (l *lane) unreplayable(err error) {
	var keys [][]string // each sent decision's counter keys, built once
	var ce *CallError
	for i, o := range l.sent {
		if !o.pending() || o.kind != opDecide || !allCounted(o.req.Rules) {
			continue
		}
		if keys == nil {
			keys = make([][]string, len(l.sent))
			for j, p := range l.sent {
				keys[j] = counterKeys(p)
			}
		}
		if !sharesAKey(keys, i) {
			continue
		}
		if ce == nil {
			ce = callError(err)
		}
		o.settle(nil, ce)
	}
}

// counterKeys are the keys of o's counter rules, as o's call sends them:
// none but for a decision.
func counterKeys(o *op) []string {
	if o.kind != opDecide {
		return nil
	}
	var out []string
	var sfx [32]byte
	for i, r := range o.req.Rules {
		if r.Counted() {
			out = append(out, string(appendKeyArg(nil, o.prefix, o.req.Tenant, r, appendKeySuffix(sfx[:0], r, o.periods[i].start))))
		}
	}
	return out
}

// sharesAKey reports whether the decision keys[i] holds the keys of
// counts one that another decision also counts.
func sharesAKey(keys [][]string, i int) bool {
	for j := range keys {
		if j == i {
			continue
		}
		for _, k := range keys[i] {
			if slices.Contains(keys[j], k) {
				return true
			}
		}
	}
	return false
}

// allCounted reports whether every rule is a counter, none a log.
func allCounted(rules []Rule) bool {
	for _, r := range rules {
		if !r.Counted() {
			return false
		}
	}
	return true
}

// group splits the ops of batch still pending into groups, in l.grouped
// by l.sizes, in the order of each group's first op: the first sends of
// the same enforced rules together (shareable, sameKey), any other op
// alone. l.mix says which groups may join a mixed call, the shareable;
// mixable is how many do.
func (l *lane) group(batch []*op) (mixable int) {
	l.grouped, l.sizes, l.mix = l.grouped[:0], l.sizes[:0], l.mix[:0]
	var taken [maxBatch]bool // batch[j] is in an earlier group
	for i, o := range batch {
		if !o.pending() || i < maxBatch && taken[i] {
			continue
		}
		first := len(l.grouped)
		l.grouped = append(l.grouped, o)
		share := o.shareable() && i < maxBatch
		if share {
			for j := i + 1; j < len(batch) && j < maxBatch; j++ {
				if p := batch[j]; !taken[j] && p.pending() && p.shareable() && o.sameKey(p) {
					taken[j] = true
					l.grouped = append(l.grouped, p)
				}
			}
		}
		l.sizes = append(l.sizes, len(l.grouped)-first)
		l.mix = append(l.mix, share)
		if share {
			mixable++
		}
	}
	return mixable
}

// replyValues is how many values a call of ops in groups (their sizes)
// answers: 1 + 3 per rule for each op.
func replyValues(ops []*op, groups []int) int {
	n := 0
	for _, size := range groups {
		n += size * (1 + 3*len(ops[0].req.Rules))
		ops = ops[size:]
	}
	return n
}

// ownPeriods moves the reset and retry of every fixed rule in v, a
// shared call's reply for one of its decisions, to that decision's own
// clock: the call counted the first op's time left in the period
// (encodeShared), and this op's is later by d µs. The other algorithms
// count by Redis' clock, one for the whole call.
func ownPeriods(v []int64, rules []Rule, d int64) {
	if d == 0 {
		return
	}
	for i, r := range rules {
		if r.algo() != algoFixed {
			continue
		}
		v[2+3*i] = max(v[2+3*i]-d, 1)
		if v[3+3*i] > 0 {
			v[3+3*i] = max(v[3+3*i]-d, 1)
		}
	}
}

// late hands the pipe's late hook a decision that Redis admitted after
// the watchdog gave up on it: what it recorded is the hook's to undo.
func (l *lane) late(o *op, reply []int64) {
	if h := l.p.cfg.late; h != nil && o.kind == opDecide && len(reply) > 0 && reply[0] == 1 {
		h(o)
	}
}

// settlePending fails the ops of batch not settled yet (the watchdog may
// have given up on them already) as one failed call, counted once.
func settlePending(batch []*op, err error) {
	var ce *CallError
	for _, o := range batch {
		if o.pending() {
			if ce == nil {
				ce = callError(err)
			}
			o.settle(nil, ce)
		}
	}
}

func (l *lane) dial(batch []*op) error {
	if l.p.shut.Load() {
		return errClosed // no dial, and no handshake to wait on, once closing
	}
	l.setPhase(phaseDialing, batch)
	gen := l.p.gen.Load()
	addr, err := l.p.addr()
	if err != nil {
		return err
	}
	c, err := dialConn(addr, &l.p.cfg.conn, l)
	if err != nil {
		if h := l.p.cfg.unlinked; h != nil && errors.Is(err, ErrReplicaUnlinked) {
			h(addr)
		}
		return err
	}
	l.p.identified(c.seen)
	l.mu.Lock()
	defer l.mu.Unlock()
	// close sets shut, then closes each lane's connection under its mu:
	// a connection made while it ran is closed there or here, never left
	// for a silent node to hold the lane, and close, on.
	if l.p.shut.Load() {
		c.close()
		return errClosed
	}
	if prev := l.p.dialedAddr.Swap(&addr); l.p.cfg.replica && prev != nil && *prev != addr {
		// Another replica than the other lanes read (the sentinels no
		// longer report theirs healthy): they dial again before their
		// next batch. A gateway forgets a pending admission once a read
		// shows it, which a replica further behind would not.
		gen = l.p.gen.Add(1)
	}
	l.c, l.gen, l.stats = c, gen, statsFor(l.p.cfg.replica, addr)
	return nil
}

// drop closes the connection; the next batch dials again.
func (l *lane) drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		l.c.close()
		l.c = nil
	}
}

// socket is dialWatch's: the dial's socket exists.
func (l *lane) socket(sock syscall.RawConn) {
	l.mu.Lock()
	l.dialEv.sock = sock
	l.mu.Unlock()
}

// connected is dialWatch's: the dial's connection is up. Its socket is
// the one to watch from now on: a dial that tried several addresses told
// socket of each, and closed the losers.
func (l *lane) connected(raw *rawConn) {
	now := time.Now()
	var sock syscall.RawConn
	if sc, ok := raw.Conn.(syscall.Conn); ok {
		sock, _ = sc.SyscallConn()
	}
	l.mu.Lock()
	l.dialEv.raw, l.dialEv.at = raw, now
	if sock != nil {
		l.dialEv.sock = sock
	}
	l.mu.Unlock()
}

func (l *lane) setPhase(ph lanePhase, batch []*op) {
	now := time.Now()
	l.mu.Lock()
	l.phase, l.batch, l.since = ph, batch, now
	l.dialEv = dialEvidence{}
	if ph == phaseReading && (l.written.IsZero() || now.Before(l.written)) {
		l.written = now
	}
	l.mu.Unlock()
	if ph != phaseIdle && l.p.asleep.Load() {
		l.p.rouse(now.UnixNano()) // after the phase: the watchdog's check sees one or the other
	}
}

// mark takes c's counters before a call is written: everything Redis
// sends from here on answers it, the replies to the last call having all
// been read.
func (l *lane) mark(c *conn) {
	sent, recv := c.counters()
	l.mu.Lock()
	l.sentMark, l.recvMark, l.lastGot, l.written, l.heldSent = sent, recv, recv, time.Time{}, 0
	l.mu.Unlock()
}

// roundTrip writes the ops still pending in one write and reads their
// replies. read reports whether any reply was read; err is a connection
// error (the connection is out of step), with the ops not yet settled
// left for the caller. Ops answered NOSCRIPT are kept in l.redo, and the
// ops of a mixed call's failed group in l.alone.
//
// The first sends of the same enforced rules in the batch share a call
// (see decide.lua): a tenant with many requests at once costs Redis one
// read and one write of each key for all of them, decided in the order
// queued (among themselves: the group goes where its first op is). Off
// Cluster, every such group of the batch, and every lone first send of
// enforced rules, goes in one mixed call where its first is: Redis runs
// one script for the batch's decisions, whatever their tenants.
func (l *lane) roundTrip(batch []*op) (read bool, err error) {
	c := l.c
	if c == nil {
		// Dropped by an earlier call of this batch, on a node that can't
		// take decisions (a mixed call's failed groups go again alone).
		return false, errDropped
	}
	b := l.wbuf[:0]
	l.mu.Lock()
	l.batch = nil // l.sent is rebuilt below (again for a reload): not the watchdog's to read meanwhile
	l.mu.Unlock()
	mixable := l.group(batch)
	if !l.p.cfg.mixed || l.noMix {
		mixable = 0
	}
	l.sent, l.calls, l.groups, l.callGroups = l.sent[:0], l.calls[:0], l.groups[:0], l.callGroups[:0]
	// Calls in order: each group at its place; with two mixable groups
	// or more, all of them in one mixed call at the first one's place.
	mixedSent := false
	for i, off := 0, 0; i < len(l.sizes); off, i = off+l.sizes[i], i+1 {
		ops := l.grouped[off : off+l.sizes[i]]
		mixed := mixable >= 2 && l.mix[i]
		switch {
		case mixed && mixedSent:
			continue // in the mixed call already
		case mixed:
			mixedSent = true
			first := len(l.sent)
			g := 0
			for j, joff := i, off; j < len(l.sizes); joff, j = joff+l.sizes[j], j+1 {
				if l.mix[j] {
					l.sent = append(l.sent, l.grouped[joff:joff+l.sizes[j]]...)
					l.groups = append(l.groups, l.sizes[j])
					g++
				}
			}
			b = encodeMixed(b, l.sent[first:], l.groups[len(l.groups)-g:])
			l.calls = append(l.calls, len(l.sent)-first)
			l.callGroups = append(l.callGroups, g)
		case len(ops) > 1:
			l.sent = append(l.sent, ops...)
			b = encodeShared(b, ops)
			l.calls, l.groups, l.callGroups = append(l.calls, len(ops)), append(l.groups, len(ops)), append(l.callGroups, 1)
		default:
			l.sent = append(l.sent, ops[0])
			b = ops[0].encode(b)
			l.calls, l.groups, l.callGroups = append(l.calls, 1), append(l.groups, 1), append(l.callGroups, 1)
		}
	}
	l.wbuf = b
	if len(l.sent) == 0 {
		return false, nil
	}
	l.mark(c)
	l.setPhase(phaseWriting, l.sent)
	if err := c.write(b); err != nil {
		return false, fmt.Errorf("write to %s: %w", c.addr, err)
	}
	l.setPhase(phaseReading, l.sent)
	var wrongNode error
	var failed *CallError // one call: every error reply in it counts once
	fail := func(o *op, re replyError) {
		if failed == nil {
			failed = callError(re)
		}
		o.settle(nil, &CallError{ID: failed.ID, Err: re})
	}
	next, nextGroup := 0, 0 // the first op and group of call i
	for i, k := range l.calls {
		ops := l.sent[next : next+k]
		groups := l.groups[nextGroup : nextGroup+l.callGroups[i]]
		next += k
		nextGroup += l.callGroups[i]
		if ops[0].asking {
			if _, err := readStatus(c.r); err != nil { // ASKING's +OK
				return i > 0, fmt.Errorf("read from %s: %w", c.addr, err)
			}
		}
		n, err := readIntArray(c.r, l.scratch[:])
		if err == nil && k > 1 && n != replyValues(ops, groups) {
			err = replyError(fmt.Sprintf("%s: %d values for %d shared decisions", errProtocol, n, k))
		}
		if re, ok := err.(replyError); ok {
			for _, o := range ops {
				switch re.prefix() {
				case "NOSCRIPT":
					l.redo = append(l.redo, o)
				case "READONLY", "CLUSTERDOWN", "MASTERDOWN", "LOADING":
					wrongNode = re // in step, but this node can't take decisions
					fail(o, re)
				default:
					fail(o, re)
				}
			}
			continue
		}
		if err != nil {
			return i > 0, fmt.Errorf("read from %s: %w", c.addr, err)
		}
		if k == 1 {
			if !ops[0].settle(l.scratch[:n], nil) {
				l.late(ops[0], l.scratch[:n])
			}
			continue
		}
		v, settled := l.scratch[:n], 0
		for _, size := range groups {
			group := ops[:size]
			ops = ops[size:]
			per := 1 + 3*len(group[0].req.Rules)
			for _, o := range group {
				w := v[:per]
				v = v[per:]
				if w[0] < 0 && len(groups) > 1 {
					l.alone = append(l.alone, o) // its group failed: alone, for its error
					continue
				}
				ownPeriods(w, o.req.Rules, o.now-group[0].now)
				if !o.settle(w, nil) {
					l.late(o, w)
				}
				settled++
			}
		}
		sharedDecisions.Add(settled)
	}
	if wrongNode != nil {
		l.drop() // the next batch asks where the primary is
	}
	l.mu.Lock()
	written := l.written
	l.mu.Unlock()
	now := time.Now()
	l.stats.batch(len(l.sent), now.Sub(written))
	l.p.repliedAt.Store(now.UnixNano())
	return true, nil
}
