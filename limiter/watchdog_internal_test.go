package limiter

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Timing of the watchdog tests: a budget, and a wait well past it that
// stands for a lane waiting for a turn to run (generous both ways, for a
// loaded machine under -race).
const (
	wdBudget = 50 * time.Millisecond
	wdLate   = 150 * time.Millisecond
)

// wdConfig is a one-lane pipe config with the watchdog tests' budget.
func wdConfig() *pipeConfig {
	cfg := testCfg()
	cfg.budget = wdBudget
	return cfg
}

// wdDecision is a pooled decision with the watchdog tests' budget.
func wdDecision() *op {
	o := decideOp(1)
	o.budget = wdBudget
	return o
}

// dialing makes a one-lane pipe to addr, puts its lane in the dial phase
// with a decision in its batch and connects as dialConn does, telling the
// lane of the socket and, if handshake, of the connection. The test plays
// the lane.
func dialing(t *testing.T, cfg *pipeConfig, addr string, handshake bool) (*lane, *op, net.Conn, *rawConn) {
	t.Helper()
	l, o := newPipe(cfg, fixedAddr(addr)).lanes[0], wdDecision()
	l.setPhase(phaseDialing, []*op{o})
	d := net.Dialer{Control: func(_, _ string, sock syscall.RawConn) error {
		l.socket(sock)
		return nil
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	raw := &rawConn{Conn: nc}
	if handshake {
		l.connected(raw)
	}
	return l, o, nc, raw
}

// reading starts a goroutine that reads from raw until it closes, as the
// lane does, and returns once it waits in Read with every byte taken.
func reading(t *testing.T, raw *rawConn, taken uint64) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			if _, err := raw.Read(buf); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !raw.inRead.Load() || raw.consumed.Load() < taken {
		if time.Now().After(deadline) {
			t.Fatal("the lane never waited in Read")
		}
		time.Sleep(time.Millisecond)
	}
	return done
}

// pinging writes a PING on nc, as the handshake's write, and starts the
// lane's reading; end closes the connection and waits for the reader.
func pinging(t *testing.T, nc net.Conn, raw *rawConn) (end func()) {
	t.Helper()
	if _, err := nc.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	done := reading(t, raw, 0)
	return func() {
		nc.Close()
		<-done
	}
}

// TestDialJudgedOnEvidence: a dial is judged as a batch on the wire is,
// on what the kernel says Redis did, so that a gateway too busy to run the
// lane does not degrade a decision Redis answered. Before, a dial was
// judged by the clock from its start: the first three cases failed the
// decision with ErrBudget while the lane waited for a turn to run.
func TestDialJudgedOnEvidence(t *testing.T) {
	f := newFake(t, func(_ int, args []string, w *bufio.Writer, _ net.Conn) bool {
		if strings.EqualFold(args[0], "PING") {
			time.Sleep(wdLate) // a Redis slow to answer: past the budget
			w.WriteString("+PONG\r\n")
		}
		return true // ROLE is answered at once
	})
	cfg := wdConfig()

	t.Run("ConnectedTheLaneYetToRun", func(t *testing.T) {
		l, o, _, _ := dialing(t, cfg, f.addr(), false)
		time.Sleep(wdLate)
		if l.check(time.Now()) || !o.pending() {
			t.Fatalf("a connect the kernel completed was judged Redis' silence: %v", o.err)
		}
	})

	t.Run("HandshakeAnsweredTheLaneYetToRead", func(t *testing.T) {
		l, o, nc, raw := dialing(t, cfg, f.addr(), true)
		if _, err := nc.Write([]byte("*1\r\n$4\r\nROLE\r\n")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(wdLate) // the reply is in the socket; the lane has not read it
		// Woken in Read but not run yet: only the kernel's count shows
		// that bytes came (with the lane's own count, it would look silent).
		raw.inRead.Store(true)
		stuck := l.check(time.Now())
		raw.inRead.Store(false)
		if stuck || !o.pending() {
			t.Fatalf("a handshake Redis answered was judged silent: %v", o.err)
		}
	})

	t.Run("SlowToWriteTheHandshake", func(t *testing.T) {
		l, o, nc, raw := dialing(t, cfg, f.addr(), true)
		time.Sleep(wdLate) // connected, then slow to write (a password file, a busy core)
		if l.check(time.Now()) {
			t.Fatal("stuck before the handshake was written")
		}
		end := pinging(t, nc, raw)
		defer end()
		if l.check(time.Now()) || !o.pending() {
			t.Fatalf("the gateway's delay before the write was judged Redis' silence: %v", o.err)
		}
	})

	t.Run("HandshakeUnansweredPastTheBudget", func(t *testing.T) {
		l, o, nc, raw := dialing(t, cfg, f.addr(), true)
		end := pinging(t, nc, raw) // answered only after wdLate
		defer end()
		if l.check(time.Now()) {
			t.Fatal("stuck the moment the lane waited")
		}
		time.Sleep(wdBudget + wdBudget/2)
		if !l.check(time.Now()) || o.pending() {
			t.Fatal("a handshake left unanswered past the budget was not given up on")
		}
		if !errors.Is(o.err, ErrBudget) || !strings.Contains(o.err.Error(), "no handshake reply from "+f.addr()) {
			t.Fatalf("error %v; want ErrBudget naming the handshake", o.err)
		}
	})

	t.Run("NoSocketYetByTheClock", func(t *testing.T) {
		l := newPipe(cfg, fixedAddr(f.addr())).lanes[0]
		o := wdDecision()
		l.setPhase(phaseDialing, []*op{o})
		time.Sleep(wdLate)
		if stuck := l.check(time.Now()); !stuck || !errors.Is(o.err, ErrBudget) {
			t.Fatalf("a dial with no socket past the budget: stuck %v, %v; want ErrBudget", stuck, o.err)
		}
	})
}

// TestScriptLoadJudgedFromItsOwnWrite: after a NOSCRIPT, the SCRIPT LOAD
// and the decisions sent again are a new call, judged from their own
// write. Before, the watchdog went on judging from the NOSCRIPT replies'
// arrival: a gateway slow to go on from them to the SCRIPT LOAD (at start,
// with every connection arriving at once) had its own delay counted as
// Redis' silence, and degraded the decisions.
func TestScriptLoadJudgedFromItsOwnWrite(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answered bool // Redis answers the SCRIPT LOAD
	}{{"Answered", true}, {"NeverAnswered", false}} {
		t.Run(tc.name, func(t *testing.T) {
			var loaded atomic.Bool
			f := newFake(t, func(_ int, args []string, w *bufio.Writer, _ net.Conn) bool {
				switch strings.ToUpper(args[0]) {
				case "EVALSHA":
					if !loaded.Load() {
						w.WriteString("-NOSCRIPT No matching script. Please use EVAL.\r\n")
						return true
					}
					w.WriteString("*4\r\n:1\r\n:9\r\n:60000000\r\n:0\r\n")
				case "SCRIPT":
					if !tc.answered {
						time.Sleep(2 * wdLate) // silent past the budget
						return false
					}
					time.Sleep(time.Millisecond) // Redis compiles it
					loaded.Store(true)
					w.WriteString("$40\r\n" + decideScript.Hash() + "\r\n")
				}
				return true
			})
			cfg := wdConfig()
			cfg.reloadHook = func(l *lane) {
				l.check(time.Now()) // the watchdog sees the NOSCRIPT replies come
				time.Sleep(wdLate)  // the gateway, slow to go on from them
			}
			l := newPipe(cfg, fixedAddr(f.addr())).lanes[0]
			o := wdDecision()
			done := make(chan struct{})
			go func() { // the watchdog, ticking meanwhile
				for {
					select {
					case <-done:
						return
					case <-time.After(time.Millisecond):
						l.check(time.Now())
					}
				}
			}()
			l.serve([]*op{o}) // as the lane does, holding the pipe's ref
			close(done)
			<-o.done
			if tc.answered {
				if o.err != nil || o.n != 4 || !loaded.Load() {
					t.Fatalf("decision after SCRIPT LOAD: %v, %d values, loaded %v; want the reply", o.err, o.n, loaded.Load())
				}
				return
			}
			if !errors.Is(o.err, ErrBudget) {
				t.Fatalf("a SCRIPT LOAD never answered: %v; want ErrBudget", o.err)
			}
		})
	}
}

// TestWatchdogSleepsWhileIdleAndWakesForACall: a second after its pipe
// last carried anything the watchdog rests (it ticked every fifth of a
// budget, and an idle gateway spent half its CPU on it), and the coarse
// clock that stands still meanwhile is not what health judges by. A
// call begun after the sleep wakes it: Redis silent on that call is
// still given up on within the budget, though the connection's own
// timeout is a minute away.
func TestWatchdogSleepsWhileIdleAndWakesForACall(t *testing.T) {
	var silent atomic.Bool
	f := newFake(t, func(_ int, args []string, w *bufio.Writer, _ net.Conn) bool {
		switch {
		case args[0] == "SCRIPT":
			w.WriteString("$40\r\n" + decideScript.Hash() + "\r\n")
		case args[0] == "EVALSHA" && !silent.Load():
			w.WriteString("*4\r\n:1\r\n:9\r\n:60000000\r\n:0\r\n")
		}
		return true // silent: no reply, the connection kept open
	})
	cfg := wdConfig()
	cfg.silence = time.Minute
	cfg.replica = true // no memory watcher: the fake has no INFO
	p := newPipe(cfg, fixedAddr(f.addr()))
	t.Cleanup(p.close)
	first := wdDecision()
	p.do(first)
	if first.err != nil {
		t.Fatalf("first decision: %v", first.err)
	}
	first.release()
	for deadline := time.Now().Add(5 * time.Second); !p.asleep.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watchdog still ticks 5 s after the pipe went idle")
		}
	}
	asleepAt := time.Now()
	time.Sleep(2 * wdLate)
	if got := p.now(); got < asleepAt.Add(2*wdLate).UnixNano() {
		t.Errorf("the clock health judges by is %v behind while the watchdog sleeps; want the time itself",
			time.Since(time.Unix(0, got)).Round(time.Millisecond))
	}
	silent.Store(true)
	second := wdDecision()
	done := make(chan struct{})
	go func() {
		p.do(second)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a call to a silent Redis after the watchdog slept was not given up on within 5 s (budget 50 ms)")
	}
	if !errors.Is(second.err, ErrBudget) {
		t.Fatalf("second decision, Redis silent: %v; want ErrBudget", second.err)
	}
	second.release()
}

// TestCloseWhileRedisIsSilentOnACall: closing a pipe whose lane waits on
// a silent Redis ends the call at once. (The closed connection looked
// like one the node had closed, so the lane dialed again and sent the
// call once more, on a connection close had not seen; close then waited
// for it as long as Redis stayed silent.)
func TestCloseWhileRedisIsSilentOnACall(t *testing.T) {
	f := newFake(t, func(_ int, args []string, w *bufio.Writer, _ net.Conn) bool {
		if args[0] == "SCRIPT" {
			w.WriteString("$40\r\n" + decideScript.Hash() + "\r\n")
		}
		return true // EVALSHA: no reply, the connection kept open
	})
	cfg := wdConfig()
	cfg.budget, cfg.silence = time.Minute, time.Minute // only close can end the call
	cfg.replica = true                                 // no memory watcher: the fake has no INFO
	p := newPipe(cfg, fixedAddr(f.addr()))
	o := decideOp(1)
	o.budget = time.Minute
	done := make(chan struct{})
	go func() {
		p.do(o)
		close(done)
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		// Reading on our side, and read on Redis' side: the lane's
		// phase turns before the fake has the bytes.
		l := p.lanes[0]
		l.mu.Lock()
		ph := l.phase
		l.mu.Unlock()
		f.mu.Lock()
		got := strings.Count(strings.Join(f.log, "\n"), "EVALSHA")
		f.mu.Unlock()
		if ph == phaseReading && got >= 1 { // the count is judged below
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the call never reached Redis (phase %v, Redis saw it %d times)", ph, got)
		}
	}
	closed := make(chan struct{})
	go func() {
		p.close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close still waits 5 s later on a call Redis does not answer")
	}
	<-done
	if o.err == nil {
		t.Fatal("the call closed under it succeeded")
	}
	o.release()
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := strings.Count(strings.Join(f.log, "\n"), "EVALSHA"); n != 1 {
		t.Errorf("Redis got the call %d times; want once, none after close", n)
	}
}

// TestALateTickDoesNotBackdateAWrite: the watchdog reads the clock,
// then waits for a CPU for longer than the budget, and resumes to find a
// batch the lane wrote meanwhile (bytes sent, the lane not yet in
// setPhase(phaseReading)). It dated the write from its clock reading, and
// its next tick, long due, ran at once and judged Redis silent for the
// whole wait, although Redis answers 5 ms after the write (found by a
// review).
func TestALateTickDoesNotBackdateAWrite(t *testing.T) {
	f := newFake(t, func(_ int, args []string, w *bufio.Writer, _ net.Conn) bool {
		if strings.EqualFold(args[0], "EVALSHA") {
			time.Sleep(5 * time.Millisecond) // healthy: a tenth of the 50 ms budget
			w.WriteString("*4\r\n:1\r\n:9\r\n:60000000\r\n:0\r\n")
		}
		return true
	})
	l := dialedLane(t, f)
	o := wdDecision()
	tick := time.Now() // watch(): now := time.Now(), then the thread is descheduled
	time.Sleep(wdLate)
	// Meanwhile the lane (roundTrip) marks, writes, and has yet to run setPhase(phaseReading).
	l.mark(l.c)
	l.setPhase(phaseWriting, []*op{o})
	wrote := time.Now()
	if err := l.c.write(o.encode(nil)); err != nil {
		t.Fatal(err)
	}
	l.check(tick)       // the late tick: sees the bytes sent, stamps written = tick
	l.check(time.Now()) // the next tick, due since long, runs at once
	var v [maxReply]int64
	_, rerr := readIntArray(l.c.r, v[:])
	answered := time.Since(wrote)
	if errors.Is(o.err, ErrBudget) {
		t.Fatalf("Redis answered %v after the write (reply err %v), yet the decision failed: %v", answered.Round(time.Millisecond), rerr, o.err)
	}
}

// TestAWriteUnderWayIsNotOnTheWire: a write the kernel has sent only
// part of (crypto/tls writes a batch as several records, one write(2)
// each, on a new connection: dynamic record sizing) while the lane waits
// for a CPU between two of them. Redis cannot answer a command it has
// half of; the watchdog took the first bytes sent as the batch written
// (found by a review).
func TestAWriteUnderWayIsNotOnTheWire(t *testing.T) {
	f := newFake(t, func(_ int, args []string, w *bufio.Writer, _ net.Conn) bool {
		if strings.EqualFold(args[0], "EVALSHA") {
			w.WriteString("*4\r\n:1\r\n:9\r\n:60000000\r\n:0\r\n") // at once
		}
		return true
	})
	l := dialedLane(t, f)
	o := wdDecision()
	b := o.encode(nil)
	l.mark(l.c)
	l.setPhase(phaseWriting, []*op{o})
	l.c.inWrite.Store(true) // inside tls.Conn.Write, between two records
	if _, err := l.c.raw.Write(b[:len(b)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	l.check(time.Now())
	time.Sleep(wdLate) // the lane's thread is descheduled before the next record
	l.check(time.Now())
	if errors.Is(o.err, ErrBudget) {
		t.Fatalf("half a command on the wire, the rest still in the gateway: %v", o.err)
	}
}

// TestABlockedWriteIsJudgedByTheBudget: a Redis that stops reading (busy,
// stopped) while a batch larger than the socket buffers is written: the
// write blocks with bytes held in the kernel, and the watchdog judges the
// silence by the budget, not the gateway's delay (found by a review of
// TestAWriteUnderWayIsNotOnTheWire's change, which left it to
// redis.read_timeout).
func TestABlockedWriteIsJudgedByTheBudget(t *testing.T) {
	f := newFake(t, func(_ int, args []string, w *bufio.Writer, _ net.Conn) bool {
		if strings.EqualFold(args[0], "EVALSHA") {
			time.Sleep(time.Hour) // stops reading
		}
		return true
	})
	l := dialedLane(t, f)
	o := wdDecision()
	b := o.encode(nil)
	for len(b) < 64<<20 { // a batch larger than the socket buffers, whole commands
		b = append(b, b...)
	}
	l.mark(l.c)
	l.setPhase(phaseWriting, []*op{o})
	go l.c.write(b)
	start := time.Now()
	stuck := false
	for time.Since(start) < 4*wdBudget {
		time.Sleep(5 * time.Millisecond)
		stuck = l.check(time.Now()) || stuck
	}
	if !errors.Is(o.err, ErrBudget) || !stuck {
		t.Fatalf("Redis took nothing for %v (budget %v) while the write blocked: decision err %v, lane stuck %v", time.Since(start).Round(time.Millisecond), wdBudget, o.err, stuck)
	}
}

// dialedLane is a lane of a pipe with wdConfig to f, dialed.
func dialedLane(t *testing.T, f *fakeRedis) *lane {
	t.Helper()
	l := newPipe(wdConfig(), fixedAddr(f.addr())).lanes[0]
	if err := l.dial(nil); err != nil {
		t.Fatal(err)
	}
	return l
}
