package limiter

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
)

// replyProxy forwards connections to target, passing each chunk Redis
// sends back to onReply first, which may act on Redis, and which returns
// false to close the client's connection instead of forwarding the chunk.
func replyProxy(t *testing.T, target string, onReply func(chunk []byte) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			cc, err := ln.Accept()
			if err != nil {
				return
			}
			sc, err := net.Dial("tcp", target)
			if err != nil {
				cc.Close()
				continue
			}
			go func() { io.Copy(sc, cc); sc.Close() }()
			go func() {
				defer cc.Close()
				defer sc.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := sc.Read(buf)
					if n > 0 && (!onReply(buf[:n]) || func() bool { _, err := cc.Write(buf[:n]); return err != nil }()) {
						return
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// withDecideLoaded is a redis-server with decide.lua loaded, and a client.
func withDecideLoaded(t *testing.T) (*redistest.Node, *redis.Client) {
	t.Helper()
	srv := redistest.Server(t)
	c := srv.Client(t)
	if err := c.ScriptLoad(context.Background(), decideSrc).Err(); err != nil {
		t.Fatal(err)
	}
	return srv, c
}

// firstSend is a first send of rule r for tenant: decision seq of "gw".
func firstSend(tenant string, r Rule, seq uint64) *op {
	o := getOp()
	o.kind, o.prefix, o.instance, o.seq, o.budget = opDecide, "p", "gw", seq, time.Second
	o.req = Request{Tenant: tenant, Rules: []Rule{r}}
	o.now = time.Now().UnixMicro()
	return o
}

// TestAFailedGroupAnsweredNoScriptAloneIsSettled: a mixed call in which
// one tenant's group fails (its key of another type) sends that group
// again alone; if that call is answered NOSCRIPT (a SCRIPT FLUSH in
// between), the script is loaded and the group answered. It was left
// pending, and its request waited for good (found in review).
func TestAFailedGroupAnsweredNoScriptAloneIsSettled(t *testing.T) {
	t.Parallel()
	srv, c := withDecideLoaded(t)
	ctx := context.Background()
	rule := Rule{Name: "l", Limit: 5, Window: time.Minute}
	if err := c.Set(ctx, ruleKey("p", "broken", rule, 0), "not a log", 0).Err(); err != nil {
		t.Fatal(err)
	}
	flush := srv.Client(t)
	var flushed atomic.Bool
	addr := replyProxy(t, srv.Addr(), func(chunk []byte) bool {
		// The mixed call's reply holds -1 for the failed group: a SCRIPT
		// FLUSH lands before the gateway's next call.
		if bytes.Contains(chunk, []byte(":-1\r\n")) && flushed.CompareAndSwap(false, true) {
			if err := flush.ScriptFlush(ctx).Err(); err != nil {
				t.Error(err)
			}
		}
		return true
	})
	cfg := testCfg()
	cfg.mixed = true
	p := newPipe(cfg, fixedAddr(addr))
	t.Cleanup(p.close)
	ok, broken := firstSend("ok1", rule, 1), firstSend("broken", rule, 2)
	p.lanes[0].serve([]*op{ok, broken})
	if !flushed.Load() {
		t.Fatal("no mixed call with a failed group was seen")
	}
	replyOf(t, ok)
	select {
	case <-broken.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the failed group's decision, sent alone and answered NOSCRIPT, is still pending 5 s after its batch ended (state %d)", broken.state.Load())
	}
	if broken.err == nil || !bytes.Contains([]byte(broken.err.Error()), []byte("WRONGTYPE")) {
		t.Fatalf("the failed group's decision: %v; want its own error, WRONGTYPE", broken.err)
	}
}

// TestALostSharedReplyIsNotCountedTwice: three decisions of one tenant
// share one call; Redis runs it and the pooled connection breaks before
// its reply is read. Decisions of a log are sent again and find their
// records; those of a counter, which keeps only the last member it
// counted, are failed instead (degraded by the caller's fail mode): sent
// again, two of the three were counted twice (found in review).
func TestALostSharedReplyIsNotCountedTwice(t *testing.T) {
	t.Parallel()
	srv, c := withDecideLoaded(t)
	ctx := context.Background()
	var drop atomic.Bool
	addr := replyProxy(t, srv.Addr(), func([]byte) bool { return !drop.CompareAndSwap(true, false) })
	p := newPipe(testCfg(), fixedAddr(addr))
	t.Cleanup(p.close)
	l := p.lanes[0]
	for _, tc := range []struct {
		rule    Rule
		counted func(key string) (int64, error)
		replays bool
	}{
		{testWindow("w", 10, 1), func(key string) (int64, error) { return c.HGet(ctx, key, "c").Int64() }, false},
		{testFixed("f", 10, 1), nil, false},
		{Rule{Name: "l", Limit: 10, Window: time.Hour}, func(key string) (int64, error) { return c.ZCard(ctx, key).Result() }, true},
	} {
		tenant := "acme-" + tc.rule.Name
		first := firstSend(tenant, tc.rule, 1)
		l.serve([]*op{first}) // the connection is pooled from here on
		replyOf(t, first)
		first.release()
		drop.Store(true) // Redis runs the next call; its reply is lost with the connection
		ops := []*op{firstSend(tenant, tc.rule, 2), firstSend(tenant, tc.rule, 3), firstSend(tenant, tc.rule, 4)}
		l.serve(ops)
		for i, o := range ops {
			<-o.done
			var ce *CallError
			switch {
			case tc.replays && (o.err != nil || o.reply[0] != 1):
				t.Errorf("%s: decision %d sent again: %v, allowed %d; want admitted, found in the log", tc.rule.Name, i+2, o.err, o.reply[0])
			case !tc.replays && !errors.As(o.err, &ce):
				t.Errorf("%s: decision %d of a lost shared call on a counter: %v; want a failed call", tc.rule.Name, i+2, o.err)
			}
			o.release()
		}
		if tc.counted == nil {
			continue
		}
		key := ruleKey("p", tenant, tc.rule, 0)
		if n, err := tc.counted(key); err != nil || n != 4 {
			t.Errorf("%s: 4 decisions run once each: counted %d (%v); want 4", tc.rule.Name, n, err)
		}
	}
}

// TestALostReplyOfTwoCallsOnOneCounterIsNotCountedTwice: two decisions
// of one tenant in one write, not one group (the second has a route's
// rule besides), both count the tenant's sliding window; the reply is
// lost after Redis ran both. The window's hash keeps the second's member,
// so the first, sent again, was counted twice (found in review): it fails
// as a call instead, in separate calls as in one mixed call.
func TestALostReplyOfTwoCallsOnOneCounterIsNotCountedTwice(t *testing.T) {
	t.Parallel()
	for _, mixed := range []bool{false, true} {
		srv, c := withDecideLoaded(t)
		var drop atomic.Bool
		addr := replyProxy(t, srv.Addr(), func([]byte) bool { return !drop.CompareAndSwap(true, false) })
		cfg := testCfg()
		cfg.mixed = mixed
		p := newPipe(cfg, fixedAddr(addr))
		t.Cleanup(p.close)
		l := p.lanes[0]
		w, route := testWindow("w", 10, 1), testWindow("route", 10, 1)
		first := firstSend("acme", w, 1)
		l.serve([]*op{first}) // the connection is pooled from here on
		replyOf(t, first)
		first.release()
		drop.Store(true) // Redis runs the next write; its reply is lost with the connection
		a, b := firstSend("acme", w, 2), firstSend("acme", w, 3)
		b.req.Rules = []Rule{w, route}
		l.serve([]*op{a, b})
		for _, o := range []*op{a, b} {
			<-o.done
			o.release()
		}
		n, err := c.HGet(context.Background(), ruleKey("p", "acme", w, 0), "c").Int64()
		if err != nil || n != 3 {
			t.Errorf("mixed=%v: 3 decisions run once each: w counted %d (%v); want 3", mixed, n, err)
		}
	}
}
