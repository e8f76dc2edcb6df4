package limiter

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
)

// fakeRedis is a tiny RESP server for the pipe's failure paths that a
// real Redis cannot be made to take on cue: handle gets every command of
// connection k and writes what it wants, or returns false to close it.
type fakeRedis struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  int
	log    []string
	handle func(k int, args []string, w *bufio.Writer, nc net.Conn) bool // false: close
}

func newFake(t *testing.T, h func(k int, args []string, w *bufio.Writer, nc net.Conn) bool) *fakeRedis {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{ln: ln, handle: h}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			k := f.conns
			f.conns++
			f.mu.Unlock()
			go f.serve(k, nc)
		}
	}()
	return f
}

func (f *fakeRedis) addr() string { return f.ln.Addr().String() }

func (f *fakeRedis) serve(k int, nc net.Conn) {
	defer nc.Close()
	r := bufio.NewReader(nc)
	w := bufio.NewWriter(nc)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.log = append(f.log, fmt.Sprintf("conn%d: %s", k, strings.Join(args, " ")))
		f.mu.Unlock()
		if strings.EqualFold(args[0], "ROLE") {
			w.WriteString("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n")
			w.Flush()
			continue
		}
		if !f.handle(k, args, w, nc) {
			w.Flush()
			return
		}
		if r.Buffered() == 0 {
			w.Flush()
		}
	}
}

// readCommand reads one RESP command as strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if line[0] != '*' {
		return nil, fmt.Errorf("bad %q", line)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
	args := make([]string, n)
	for i := range n {
		l, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		m, _ := strconv.Atoi(strings.TrimSpace(l[1:]))
		buf := make([]byte, m+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:m])
	}
	return args, nil
}

// testCfg is a one-lane pipe with generous timeouts.
func testCfg() *pipeConfig {
	return &pipeConfig{conn: connOptions{dialTimeout: time.Second, primary: true}, lanes: 1,
		budget: time.Second, silence: time.Second, queueTimeout: time.Second}
}

// decideOp is a pooled one-rule decision as decideOnPrimary makes it.
func decideOp(seq uint64) *op {
	o := getOp()
	o.kind, o.prefix, o.instance, o.seq, o.budget = opDecide, "p", "gw", seq, time.Second
	o.req = Request{Tenant: "acme", Rules: []Rule{{Name: "r", Limit: 10, Window: time.Minute}}}
	return o
}

// TestNoScriptThenBrokenConnectionLeavesNothingBehind: a batch where one
// decision is answered NOSCRIPT and the connection then breaks before the
// next reply fails both; the NOSCRIPT one must not be sent again with a
// later batch, after it went back to the pool (found in review: it was,
// and settling a pooled op handed its reply to the next request).
func TestNoScriptThenBrokenConnectionLeavesNothingBehind(t *testing.T) {
	evals := 0
	f := newFake(t, func(k int, args []string, w *bufio.Writer, _ net.Conn) bool {
		switch args[0] {
		case "EVALSHA":
			evals++
			if k == 0 {
				if evals == 1 {
					w.WriteString("-NOSCRIPT No matching script. Please use EVAL.\r\n")
					return true
				}
				return false // close before the second reply
			}
			w.WriteString("*4\r\n:1\r\n:9\r\n:60000000\r\n:0\r\n")
		case "SCRIPT":
			w.WriteString("$40\r\n" + decideScript.Hash() + "\r\n")
		}
		return true
	})
	p := newPipe(testCfg(), fixedAddr(f.addr()))
	l := p.lanes[0]
	a, b := decideOp(1), decideOp(2)
	b.req.Tenant = "beta" // two calls, not one shared
	l.serve([]*op{a, b})  // as the lane does, holding the pipe's refs
	<-a.done
	<-b.done
	if a.err == nil || b.err == nil {
		t.Fatalf("a broken connection answered: %v, %v", a.err, b.err)
	}
	a.release() // the waiters let go: both back in the pool
	b.release()
	if len(l.redo) != 0 {
		t.Fatalf("%d decisions left to redo after their batch failed; want 0", len(l.redo))
	}
	c := &op{done: make(chan struct{}, 1)} // not from the pool, which may hand back a or b
	c.state.Store(opPending)
	c.refs.Store(2)
	c.kind, c.prefix, c.instance, c.seq, c.budget = opDecide, "p", "gw", 3, time.Second
	c.req = Request{Tenant: "other", Rules: []Rule{{Name: "r", Limit: 10, Window: time.Minute}}}
	l.serve([]*op{c})
	<-c.done
	if c.err != nil || c.n != 4 {
		t.Fatalf("next batch: %v, %d values", c.err, c.n)
	}
	if a.state.Load() != opFree || len(a.done) != 0 {
		t.Fatalf("a pooled decision was settled again: state %d, %d wake-ups queued", a.state.Load(), len(a.done))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := strings.Count(strings.Join(f.log, "\n"), "EVALSHA"); n != 3 {
		t.Fatalf("Redis saw %d EVALSHA; want 3 (two in the failed batch, one after)\n%s", n, strings.Join(f.log, "\n"))
	}
}

// TestQueueAgeIsTheDecisionsOwn: a decision is shed for its own wait in
// the queue, never for the watchdog's lateness (it was stamped with the
// watchdog's coarse clock, so a watchdog that had not run for a while
// made a decision queued just now look old enough to shed).
func TestQueueAgeIsTheDecisionsOwn(t *testing.T) {
	p := newPipe(testCfg(), fixedAddr("127.0.0.1:1"))
	p.once.Do(func() {}) // no lanes and no watchdog: the coarse clock never ticks
	p.clock.Store(time.Now().Add(-time.Hour).UnixNano())
	o := decideOp(1)
	returned := make(chan struct{})
	go func() {
		p.do(o)
		close(returned)
	}()
	got := <-p.queue
	kept := p.lanes[0].take([]*op{got})
	if len(kept) != 1 || !got.pending() {
		t.Fatalf("a decision queued just now was shed (%v): its age came from a clock an hour late", got.err)
	}
	got.settle(nil, errClosed)
	got.release()
	<-returned
	if o.err != errClosed {
		t.Fatalf("do returned with %v; want the settled error", o.err)
	}
	o.release()
}

// sharedReplyOf is a fake's reply to a shared call of k decisions, all
// admitted.
func sharedReplyOf(k int) string {
	b := fmt.Sprintf("*%d\r\n", 4*k)
	for range k {
		b += ":1\r\n:9\r\n:60000000\r\n:0\r\n"
	}
	return b
}

// TestSharedCallWithAReplyOfTheWrongLength: a shared call answered with
// an array that does not hold 4 values per decision fails all of them as
// one call, and the connection, still in step, carries the next batch.
func TestSharedCallWithAReplyOfTheWrongLength(t *testing.T) {
	f := newFake(t, func(_ int, args []string, w *bufio.Writer, _ net.Conn) bool {
		switch {
		case args[0] != "EVALSHA":
		case args[5] == "m" && len(args) == 12: // the first batch: 2 decisions
			w.WriteString(sharedReplyOf(1))
		case args[5] == "m":
			w.WriteString(sharedReplyOf(len(args) - 10)) // 10 arguments, then a member each
		default:
			w.WriteString(sharedReplyOf(1))
		}
		return true
	})
	p := newPipe(testCfg(), fixedAddr(f.addr()))
	l := p.lanes[0]
	a, b := decideOp(1), decideOp(2)
	l.serve([]*op{a, b})
	<-a.done
	<-b.done
	var ea, eb *CallError
	if !errors.As(a.err, &ea) || !errors.As(b.err, &eb) || ea.ID != eb.ID || !strings.Contains(a.err.Error(), "4 values for 2 shared decisions") {
		t.Fatalf("a reply of 4 values for 2 decisions: %v, %v; want one failed call for both", a.err, b.err)
	}
	a.release()
	b.release()
	c, d, e := decideOp(3), decideOp(4), decideOp(5)
	l.serve([]*op{c, d, e})
	for _, o := range []*op{c, d, e} {
		<-o.done
		if o.err != nil || o.n != 4 || o.reply[0] != 1 {
			t.Fatalf("the next batch: %v, %v", o.err, o.reply[:o.n])
		}
		o.release()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns != 1 {
		t.Fatalf("%d connections; want 1: a reply read whole leaves it in step", f.conns)
	}
}

// TestSharedCallOnABrokenConnectionIsResentOneByOne: a shared call on a
// pooled connection the node closed is sent again on a new one, each
// decision alone with replay set, so each finds its own record.
func TestSharedCallOnABrokenConnectionIsResentOneByOne(t *testing.T) {
	f := newFake(t, func(k int, args []string, w *bufio.Writer, _ net.Conn) bool {
		if args[0] != "EVALSHA" {
			return true
		}
		if k == 0 && args[5] == "m" {
			return false // the node closed the pooled connection
		}
		w.WriteString(sharedReplyOf(1))
		return true
	})
	p := newPipe(testCfg(), fixedAddr(f.addr()))
	l := p.lanes[0]
	first := decideOp(1)
	l.serve([]*op{first}) // dials: the connection is pooled from here on
	<-first.done
	first.release()
	ops := []*op{decideOp(2), decideOp(3), decideOp(4)}
	l.serve(ops)
	for _, o := range ops {
		<-o.done
		if o.err != nil || o.n != 4 {
			t.Fatalf("decision %d: %v, %d values", o.seq, o.err, o.n)
		}
		o.release()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var resent []string
	for _, line := range f.log {
		if strings.HasPrefix(line, "conn1: EVALSHA") {
			resent = append(resent, line)
		}
	}
	if len(resent) != 3 {
		t.Fatalf("resent as %d calls; want 3, one per decision\n%s", len(resent), strings.Join(f.log, "\n"))
	}
	for _, line := range resent {
		if args := strings.Fields(line); len(args) != 11 || !strings.HasPrefix(args[5], "gw:") || args[6] != "1" {
			t.Fatalf("resent %q; want one decision with replay 1", line)
		}
	}
}

// TestIdentifiedMarksRestartsAndPromotions: at one address, a new run_id
// is a restart, and a master seen a replica before, or with a replication
// ID a promotion shifted, was promoted (a failback): both mark the node
// lost. Broken connections, a backlog freed without replicas (a new ID,
// the old one cleared), another address (Sentinel followed another node)
// or an INFO refused mark nothing. Seeing a replica bumps gen once.
func TestIdentifiedMarksRestartsAndPromotions(t *testing.T) {
	const a, b = "a:1", "b:1"
	master := func(addr, run, repl string, shifted bool) nodeID {
		return nodeID{addr: addr, runID: run, replID: repl, shifted: shifted}
	}
	replica := func(addr, run, repl string) nodeID {
		return nodeID{addr: addr, runID: run, replica: true, replID: repl, shifted: true}
	}
	for _, c := range []struct {
		name string
		seen []nodeID
		lost bool
		gen  uint64
	}{
		{"the same node again", []nodeID{master(a, "r1", "x", false), master(a, "r1", "x", false)}, false, 0},
		{"a restart", []nodeID{master(a, "r1", "x", false), master(a, "r2", "y", false)}, true, 0},
		{"a replica, then a master", []nodeID{master(a, "r1", "x", false), replica(a, "r1", "y"), master(a, "r1", "z", true)}, true, 1},
		{"a replica seen twice", []nodeID{master(a, "r1", "x", false), replica(a, "r1", "y"), replica(a, "r1", "y")}, false, 1},
		{"a promotion no read saw", []nodeID{master(a, "r1", "x", false), master(a, "r1", "z", true)}, true, 0},
		{"a promotion no read saw, after an earlier one", []nodeID{master(a, "r1", "x", true), master(a, "r1", "z", true)}, true, 0},
		{"a backlog freed", []nodeID{master(a, "r1", "x", true), master(a, "r1", "z", false)}, false, 0},
		{"another address", []nodeID{master(a, "r1", "x", false), master(b, "r2", "z", true)}, false, 0},
		{"a replica, then a master, at another address", []nodeID{master(a, "r1", "x", false), replica(b, "r2", "y"), master(b, "r2", "z", true)}, true, 1},
		{"INFO refused", []nodeID{master(a, "r1", "x", false), {addr: a}, master(a, "r1", "x", false)}, false, 0},
		{"no replication section", []nodeID{master(a, "r1", "x", false), master(a, "r1", "", false)}, false, 0},
	} {
		p := newPipe(testCfg(), fixedAddr(a))
		for _, n := range c.seen {
			p.identified(n)
		}
		if lost := p.health.lostAt.Load() != 0; lost != c.lost || p.gen.Load() != c.gen {
			t.Errorf("%s: lost %v, gen %d; want %v, %d", c.name, lost, p.gen.Load(), c.lost, c.gen)
		}
	}
}

// TestParseMemoryStateReadsReplication: the role and replication IDs of
// INFO replication, as Redis 7 writes them; an ID of zeros is none.
func TestParseMemoryStateReadsReplication(t *testing.T) {
	info := "# Server\r\nrun_id:r1\r\n\r\n# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\n" +
		"master_replid:2f3c\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nsecond_repl_offset:-1\r\n"
	if got, want := parseMemoryState(info).node, (nodeID{runID: "r1", replica: true, replID: "2f3c"}); got != want {
		t.Fatalf("%+v; want %+v", got, want)
	}
	info = strings.Replace(strings.Replace(info, "role:slave", "role:master", 1), "replid2:0000", "replid2:9a00", 1)
	if got, want := parseMemoryState(info).node, (nodeID{runID: "r1", replID: "2f3c", shifted: true}); got != want {
		t.Fatalf("%+v; want %+v", got, want)
	}
}

// TestPromotedReplicaIsSeenByTheNextDial: a primary's node seen a replica
// by the watcher has its lanes dial again before their next batch; a
// connection that saw a replica carries one batch only; so the first
// decision after the node is promoted goes on a connection whose dial saw
// the promotion, and is marked before it is answered, the watcher not
// having read the node again (a replica keeps its clients' connections
// through a promotion).
func TestPromotedReplicaIsSeenByTheNextDial(t *testing.T) {
	var mu sync.Mutex
	role, replID, replID2 := "master", "x", "0000"
	set := func(r, id, id2 string) {
		mu.Lock()
		role, replID, replID2 = r, id, id2
		mu.Unlock()
	}
	info := func() string {
		mu.Lock()
		defer mu.Unlock()
		return "# Server\r\nrun_id:r1\r\n# Replication\r\nrole:" + role + "\r\nmaster_replid:" + replID +
			"\r\nmaster_replid2:" + replID2 + "\r\n"
	}
	f := newFake(t, func(_ int, args []string, w *bufio.Writer, _ net.Conn) bool {
		switch args[0] {
		case "INFO":
			s := info()
			fmt.Fprintf(w, "$%d\r\n%s\r\n", len(s), s)
		case "EVALSHA":
			mu.Lock()
			r := role
			mu.Unlock()
			if r == "slave" {
				w.WriteString("-MOVED 1 127.0.0.1:1\r\n")
			} else {
				w.WriteString("*4\r\n:1\r\n:9\r\n:60000000\r\n:0\r\n")
			}
		}
		return true
	})
	cfg := testCfg()
	cfg.conn.primary, cfg.conn.identify = false, true // a Cluster primary's
	p := newPipe(cfg, fixedAddr(f.addr()))
	l := p.lanes[0]
	serve := func() *op {
		o := decideOp(1)
		l.serve([]*op{o})
		<-o.done
		return o
	}
	dials := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.conns
	}
	if o := serve(); o.err != nil || p.health.lostAt.Load() != 0 {
		t.Fatalf("a master's decision: %v, lost %v", o.err, p.health.lostAt.Load() != 0)
	} else {
		o.release()
	}

	set("slave", "y", "x") // b promoted, a its replica: the watcher reads a
	m := parseMemoryState(info())
	m.node.addr = f.addr()
	p.identified(m.node)
	if o := serve(); o.err == nil { // a stale slot map: a answers MOVED
		t.Fatal("a replica's decision answered")
	} else {
		o.release()
	}
	if dials() != 2 || l.c != nil {
		t.Fatalf("%d dials, connection kept %v, after a batch on a node seen a replica; want 2, a new one not kept", dials(), l.c != nil)
	}

	set("master", "z", "y") // a takes its slots back, unread by the watcher
	o := serve()
	defer o.release()
	if o.err != nil {
		t.Fatal(o.err)
	}
	if dials() != 3 {
		t.Fatalf("%d dials; want 3: the decision after the promotion on a new connection", dials())
	}
	if why := p.health.why(o.req.Rules, time.Now().UnixNano()); why != WhyRestarted {
		t.Fatalf("the first decision after a failback: why %q; want restarted", why)
	}
}

// TestReplicaLanesFollowOneAnother: a lane of a replica pipe that dials
// another replica than the one the other lanes read (the sentinels no
// longer report it healthy, and name another) makes them dial again
// before their next batch: a gateway forgets a pending admission once a
// read shows it, and a lane left on a replica further behind would not
// show it (found by a review). A primary pipe's lanes follow the watcher.
func TestReplicaLanesFollowOneAnother(t *testing.T) {
	t.Parallel()
	a, b := redistest.Server(t), redistest.Server(t)
	for _, replica := range []bool{true, false} {
		var addr atomic.Pointer[string]
		addr.Store(new(a.Addr()))
		cfg := testCfg()
		cfg.conn.primary, cfg.lanes, cfg.replica = false, 2, replica
		p := newPipe(cfg, func() (string, error) { return *addr.Load(), nil })
		l1, l2 := p.lanes[0], p.lanes[1]
		for _, l := range []*lane{l1, l2} {
			if err := l.dial(nil); err != nil {
				t.Fatal(err)
			}
		}
		if l2.gen != p.gen.Load() {
			t.Fatalf("replica %v: both lanes dialed the same node, and the second must dial again", replica)
		}
		addr.Store(new(b.Addr()))
		l1.drop()
		if err := l1.dial(nil); err != nil {
			t.Fatal(err)
		}
		if again := l2.gen != p.gen.Load(); again != replica {
			t.Errorf("replica pipe %v: the other lane dials again before its next batch: %v; want %v", replica, again, replica)
		}
		l1.drop()
		l2.drop()
	}
}
