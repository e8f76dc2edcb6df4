package limiter

import (
	"fmt"
	"runtime"
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
	lastGot  uint64    // received at the last check that saw it grow
	lastAt   time.Time // when that check was
	dialEv   dialEvidence

	// the lane goroutine's own
	wbuf []byte
	sent []*op
	// calls is how many ops of sent each call carries, in order: more
	// than one when they share it (see roundTrip).
	calls   []int
	redo    []*op
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
	now := time.Now().UnixNano()
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
	l.redo = l.redo[:0] // only ever this batch's ops
	defer func() {
		l.redo = l.redo[:0]
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
		// new one. The script finds its record if the first write landed.
		l.drop()
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
	if err != nil {
		l.drop()
		settlePending(batch, err)
	}
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
		return err
	}
	l.p.identified(addr, c.runID)
	l.mu.Lock()
	defer l.mu.Unlock()
	// close sets shut, then closes each lane's connection under its mu:
	// a connection made while it ran is closed there or here, never left
	// for a silent node to hold the lane, and close, on.
	if l.p.shut.Load() {
		c.close()
		return errClosed
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
	l.sentMark, l.recvMark, l.lastGot, l.written = sent, recv, recv, time.Time{}
	l.mu.Unlock()
}

// roundTrip writes the ops still pending in one write and reads their
// replies. read reports whether any reply was read; err is a connection
// error (the connection is out of step), with the ops not yet settled
// left for the caller. Ops answered NOSCRIPT are kept in l.redo.
//
// The first sends of the same enforced rules in the batch share a call
// (see decide.lua): a tenant with many requests at once costs Redis one
// read and one write of each key for all of them, decided in the order
// queued (among themselves: the group goes where its first op is).
func (l *lane) roundTrip(batch []*op) (read bool, err error) {
	c := l.c
	b := l.wbuf[:0]
	l.mu.Lock()
	l.batch = nil // l.sent is rebuilt below (again for a reload): not the watchdog's to read meanwhile
	l.mu.Unlock()
	l.sent, l.calls = l.sent[:0], l.calls[:0]
	var shared [maxBatch]bool // batch[j] went in an earlier call
	for i, o := range batch {
		if !o.pending() || i < maxBatch && shared[i] {
			continue
		}
		first := len(l.sent)
		l.sent = append(l.sent, o)
		if o.shareable() && i < maxBatch {
			for j := i + 1; j < len(batch) && j < maxBatch; j++ {
				if p := batch[j]; !shared[j] && p.pending() && p.shareable() && o.sameKey(p) {
					shared[j] = true
					l.sent = append(l.sent, p)
				}
			}
		}
		if k := len(l.sent) - first; k > 1 {
			b = encodeShared(b, l.sent[first:])
			l.calls = append(l.calls, k)
		} else {
			b = o.encode(b)
			l.calls = append(l.calls, 1)
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
	next := 0 // the first op of call i in l.sent
	for i, k := range l.calls {
		ops := l.sent[next : next+k]
		next += k
		if ops[0].asking {
			if _, err := readStatus(c.r); err != nil { // ASKING's +OK
				return i > 0, fmt.Errorf("read from %s: %w", c.addr, err)
			}
		}
		n, err := readIntArray(c.r, l.scratch[:])
		per := 1 + 3*len(ops[0].req.Rules) // a shared call's values per decision
		if err == nil && k > 1 && n != per*k {
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
			ops[0].settle(l.scratch[:n], nil)
			continue
		}
		for j, o := range ops {
			v := l.scratch[per*j : per*j+per]
			ownPeriods(v, o.req.Rules, o.now-ops[0].now)
			o.settle(v, nil)
		}
		sharedDecisions.Add(k)
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
