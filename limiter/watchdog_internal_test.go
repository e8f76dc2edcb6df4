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

// dialing puts l in the dial phase with o in its batch and connects to
// addr as dialConn does, telling l of the socket and, if handshake, of the
// connection. It returns the connection; the test plays the lane.
func dialing(t *testing.T, l *lane, o *op, addr string, handshake bool) (net.Conn, *rawConn) {
	t.Helper()
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
	return nc, raw
}

// TestDialJudgedOnEvidence: a dial is judged as a batch on the wire is,
// on what the kernel says Redis did, so that a gateway too busy to run the
// lane does not degrade a decision Redis answered. Before, a dial was
// judged by the clock alone: every case below but the last failed the
// decision with ErrBudget while its lane waited for a turn to run.
func TestDialJudgedOnEvidence(t *testing.T) {
	f := newFake(t, func(int, []string, *bufio.Writer, net.Conn) bool { return true }) // answers ROLE
	cfg := testCfg()
	cfg.budget = 10 * time.Millisecond
	const late = 30 * time.Millisecond // the lane's wait for a turn, past the budget
	decision := func() *op {
		o := decideOp(1)
		o.budget = cfg.budget
		return o
	}

	t.Run("ConnectedTheLaneYetToRun", func(t *testing.T) {
		l := newPipe(cfg, fixedAddr(f.addr())).lanes[0]
		o := decision()
		dialing(t, l, o, f.addr(), false)
		time.Sleep(late)
		if l.check(time.Now()) || !o.pending() {
			t.Fatalf("a connect the kernel completed was judged Redis' silence: %v", o.err)
		}
	})

	t.Run("HandshakeAnsweredTheLaneYetToRead", func(t *testing.T) {
		l := newPipe(cfg, fixedAddr(f.addr())).lanes[0]
		o := decision()
		nc, raw := dialing(t, l, o, f.addr(), true)
		if _, err := nc.Write([]byte("*1\r\n$4\r\nROLE\r\n")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(late) // the reply is in the socket; the lane has not read it
		if l.check(time.Now()) || !o.pending() {
			t.Fatalf("a handshake Redis answered was judged silent: %v", o.err)
		}

		// The lane reads the reply, then waits in Read for more that
		// never comes: now Redis owes it, and past the budget that is
		// Redis' silence.
		done := make(chan struct{})
		go func() {
			defer close(done)
			r := bufio.NewReader(raw)
			if _, err := readRole(r); err != nil {
				t.Error(err)
				return
			}
			r.ReadByte() // blocks until the connection closes
		}()
		deadline := time.Now().Add(5 * time.Second)
		for !raw.inRead.Load() || raw.consumed.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the reply was not read")
			}
			time.Sleep(time.Millisecond)
		}
		if l.check(time.Now()) {
			t.Fatal("stuck the moment the reply was read")
		}
		time.Sleep(late)
		if !l.check(time.Now()) || o.pending() {
			t.Fatal("a handshake left unanswered past the budget was not given up on")
		}
		if !errors.Is(o.err, ErrBudget) || !strings.Contains(o.err.Error(), "no handshake reply from "+f.addr()) {
			t.Fatalf("error %v; want ErrBudget naming the handshake", o.err)
		}
		nc.Close()
		<-done
	})

	t.Run("NoSocketYetByTheClock", func(t *testing.T) {
		l := newPipe(cfg, fixedAddr(f.addr())).lanes[0]
		o := decision()
		l.setPhase(phaseDialing, []*op{o})
		time.Sleep(late)
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
			time.Sleep(5 * time.Millisecond) // Redis compiles it: well within the budget
			loaded.Store(true)
			w.WriteString("$40\r\n" + decideScript.Hash() + "\r\n")
		}
		return true
	})
	cfg := testCfg()
	cfg.budget = 10 * time.Millisecond
	l := newPipe(cfg, fixedAddr(f.addr())).lanes[0]
	testHookReload = func(l *lane) {
		l.check(time.Now())               // the watchdog sees the NOSCRIPT replies come
		time.Sleep(30 * time.Millisecond) // the gateway, slow to go on from them
	}
	t.Cleanup(func() { testHookReload = nil })

	o := decideOp(1)
	o.budget = cfg.budget
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
	if o.err != nil || o.n != 4 {
		t.Fatalf("decision after SCRIPT LOAD: %v, %d values; want the reply", o.err, o.n)
	}
	if !loaded.Load() {
		t.Fatal("the script was never loaded: the test did not take the NOSCRIPT path")
	}
}
