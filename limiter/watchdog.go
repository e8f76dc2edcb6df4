package limiter

import (
	"fmt"
	"time"
)

// restAfter is how long a pipe carries nothing before its watchdog rests
// (see pipe.asleep). A shorter rest cost more than it saved: at 1 000
// decisions a second the watchdog slept between calls, and every call
// woke it, at 20 µs of CPU a request (bench-compare at 1 000 req/s).
const restAfter = time.Second

// watch runs the watchdog until the pipe closes. It ticks every fifth of
// a budget, and rests once the pipe has carried nothing for restAfter,
// until a lane leaves phaseIdle (see pipe.asleep).
func (p *pipe) watch() {
	defer p.wg.Done()
	every := min(max(p.cfg.budget/5, 200*time.Microsecond), 5*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
		}
		now := time.Now()
		p.clock.Store(now.UnixNano())
		p.check(now)
		if !p.idle() || now.UnixNano()-max(p.repliedAt.Load(), p.rousedAt.Load()) < int64(restAfter) {
			continue
		}
		// Asleep is said first, then idleness checked again: a lane that
		// leaves phaseIdle meanwhile is seen here, or sees asleep and
		// sends on wake.
		p.asleep.Store(true)
		if p.idle() {
			t.Stop()
			select {
			case <-p.quit:
				return
			case <-p.wake:
			}
			p.clock.Store(time.Now().UnixNano())
			t.Reset(every)
		}
		// Awake: the memory watcher may have settled on the resting pace
		// while asleep was said, and a wake-up may have come from a stale
		// token on wake rather than a rouse; this puts it back on the busy
		// pace (at most one read more per wake-up).
		p.asleep.Store(false)
		select {
		case p.memWake <- struct{}{}:
		default:
		}
		select {
		case <-p.wake: // sent after the check above: nothing to wake
		default:
		}
	}
}

// rouse wakes the resting watchdog, and the memory watcher for a read at
// once, setting the coarse clock to now (unix ns) for the call that wakes
// them (never back: a stale rouse may come after a tick).
func (p *pipe) rouse(now int64) {
	if now > p.clock.Load() {
		p.clock.Store(now)
	}
	p.rousedAt.Store(now)
	for _, c := range []chan struct{}{p.wake, p.memWake} {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// now is the coarse clock, or, while the watchdog rests and the clock
// stands still, the time itself.
func (p *pipe) now() int64 {
	if p.asleep.Load() {
		return time.Now().UnixNano()
	}
	return p.clock.Load()
}

// check looks at every lane; when none can carry anything soon, what has
// waited in the queue for longer than its budget fails rather than wait on.
func (p *pipe) check(now time.Time) {
	stuck := 0
	for _, l := range p.lanes {
		if l.check(now) {
			stuck++
		}
	}
	if stuck > 0 {
		p.silentAt.Store(now.UnixNano())
	}
	if stuck == len(p.lanes) && len(p.queue) > 0 {
		p.failStale(mono(now))
	}
}

// failStale fails, as one call, the queued ops that have waited longer
// than their budget while no lane could carry them; the others go back in
// line. A Redis silent for a little longer than a budget (a stalled host,
// say) so costs the batches on the wire, not every decision queued behind
// them; a stall keeps failing what it holds up, a budget late at most,
// until the breaker opens.
func (p *pipe) failStale(now int64) { // now: monoNow's clock
	var err error
	for n := len(p.queue); n > 0; n-- {
		var o *op
		select {
		case o = <-p.queue:
		default:
			return
		}
		if time.Duration(now-o.queued) <= o.budget {
			select {
			case p.queue <- o:
				continue
			default: // the queue filled meanwhile: it fails with the rest
			}
		}
		if err == nil {
			err = callError(fmt.Errorf("%w: no connection to the node answers", ErrBudget))
		}
		o.settle(nil, err)
		o.release()
	}
}

// check judges the call on the wire, if any, and gives up on the ops
// whose budget passed with nothing received from Redis since the call was
// written. Once any byte of the reply has arrived, Redis has answered:
// what is left is the gateway reading it, however busy the gateway is.
// stuck reports that the lane can carry nothing soon: silent past the
// pipe's budget, or dialing for longer.
func (l *lane) check(now time.Time) (stuck bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.phase == phaseIdle {
		return false
	}
	c := l.c
	dialing := l.phase == phaseDialing || c == nil // nil: dropped, the batch is ending
	silent := now.Sub(l.since)
	if l.phase == phaseDialing {
		silent = l.dialSilence(now)
	}
	if !dialing {
		sent, got := c.counters()
		// A write still under way (crypto/tls writes a batch as several
		// records, and the lane may wait for a CPU between two) is not on
		// the wire yet: Redis may hold half a command. Read after the
		// counters, so that a write it shows over was over when they were
		// read. Unless the kernel holds bytes of it unsent and has sent
		// nothing more since the last tick: then the write waits on Redis,
		// which takes nothing in (stopped, or too busy to read), and is on
		// the wire as far as the gateway can put it. (Bytes held while the
		// kernel still sends are a congestion window's, on a network.)
		writing := c.inWrite.Load()
		if writing && c.heldInKernel() {
			writing = sent != l.heldSent
			l.heldSent = sent
		}
		// Evidence is dated from after it was read, never from the tick:
		// a watchdog that waited for a CPU since it read the clock would
		// date a write it finds now from before the write.
		seen := time.Now()
		if got != l.recvMark {
			if got != l.lastGot {
				l.lastGot, l.lastAt = got, seen
			}
			// Redis answered part of the batch. The rest is judged from the
			// last byte that came, while the lane waits in Read with every
			// byte taken: a reply cut off mid-way.
			if c.waiting() {
				l.giveUp(now, now.Sub(l.lastAt), c)
			}
			return false
		}
		if sent != l.sentMark && l.written.IsZero() && !writing {
			l.written = seen // the lane has not said so yet: it is busy
		}
		if l.written.IsZero() {
			if silent > l.p.cfg.silence && c.inWrite.Load() {
				c.close() // a write Redis does not take in: it reads nothing
			}
			return false // not written yet: the gateway's delay, not Redis'
		}
		silent = now.Sub(l.written)
	}
	l.giveUp(now, silent, c)
	return silent > l.p.cfg.budget
}

// giveUp settles with ErrBudget the ops of the batch whose budget a
// silence of silent has passed, and closes a connection silent for longer
// than redis.read_timeout (the lane's read fails and it dials again).
// Called with l.mu held; c is nil while dialing.
func (l *lane) giveUp(now time.Time, silent time.Duration, c *conn) {
	var err error
	for _, o := range l.batch {
		if o.pending() && silent > o.budget {
			if err == nil {
				err = callError(fmt.Errorf("%w: %s for %s (budget %s)", ErrBudget, l.what(), silent.Round(10*time.Microsecond), o.budget))
			}
			o.settle(nil, err)
		}
	}
	if c != nil && l.phase != phaseDialing && silent > l.p.cfg.silence {
		c.close()
	}
}

// dialSilence is how long Redis has owed the dial under way an answer,
// judged on the kernel's evidence where there is some. Connected, the
// handshake is owed an answer only while the lane waits in Read with
// every byte that came taken, and only since the last byte came or the
// last request went out (or the connect); otherwise the lane has
// something to do, and what it waits for is a turn to run: the gateway's
// delay. A connect the kernel has completed owes nothing either. Without
// evidence (no socket yet, the SYN unanswered, or a kernel that cannot
// tell), it is the time since the dial began, when the lane was running.
// Called with l.mu held.
func (l *lane) dialSilence(now time.Time) time.Duration {
	d := &l.dialEv
	if d.sock == nil {
		return now.Sub(l.since)
	}
	var in bool
	var consumed uint64
	if d.raw != nil { // in this order, as conn.waiting reads them
		in, consumed = d.raw.inRead.Load(), d.raw.consumed.Load()
	}
	var connected, known, counted bool
	var sent, got uint64
	err := d.sock.Control(func(fd uintptr) {
		connected, known, sent, got, counted = socketState(int(fd))
	})
	switch {
	case err != nil:
		return 0 // closed: the dial failed, and the lane says so when it runs
	case d.raw == nil && known && connected:
		return 0 // up: the lane has yet to run and see it
	case d.raw == nil:
		return now.Sub(l.since)
	}
	if !counted {
		sent, got = 0, consumed
	}
	if got != d.lastGot || sent != d.lastSent {
		// A byte came, or a request went out (the gateway may have taken
		// its time to write it): Redis owes from here, dated from after
		// the counters were read (see check).
		d.lastGot, d.lastSent, d.lastAt = got, sent, time.Now()
	}
	if !in || consumed != got {
		return 0
	}
	return now.Sub(later(d.at, d.lastAt))
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// what describes the silence for an error message.
func (l *lane) what() string {
	if l.phase == phaseDialing && l.dialEv.raw != nil {
		return "no handshake reply from " + l.dialEv.raw.RemoteAddr().String()
	}
	if l.phase == phaseDialing || l.c == nil {
		return "connecting took longer than the budget"
	}
	return "no reply from " + l.c.addr
}
