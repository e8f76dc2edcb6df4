package limiter

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// hookPrimary is a primary client whose pipelines onPipe may wrap (n
// counts them from 1), to fail or delay a recorder's send.
type hookPrimary struct {
	redis.UniversalClient
	n      int
	onPipe func(n int, p redis.Pipeliner) redis.Pipeliner
}

func (h *hookPrimary) Pipeline() redis.Pipeliner {
	h.n++
	return h.onPipe(h.n, h.UniversalClient.Pipeline())
}

// hookPipe is a pipeline whose EVALSHA calls evalsha may replace (i counts
// them from 0), with before run ahead of its Exec and after on its
// commands once it returned.
type hookPipe struct {
	redis.Pipeliner
	cmds    []*redis.Cmd
	evalsha func(i int, ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd
	before  func()
	after   func(cmds []*redis.Cmd)
}

func (p *hookPipe) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	var c *redis.Cmd
	if p.evalsha != nil {
		c = p.evalsha(len(p.cmds), ctx, sha, keys, args...)
	} else {
		c = p.Pipeliner.EvalSha(ctx, sha, keys, args...)
	}
	p.cmds = append(p.cmds, c)
	return c
}

func (p *hookPipe) Exec(ctx context.Context) ([]redis.Cmder, error) {
	if p.before != nil {
		p.before()
	}
	res, err := p.Pipeliner.Exec(ctx)
	if p.after != nil {
		p.after(p.cmds)
	}
	return res, err
}

// runHook is hookPrimary whose EVALSHA of the record with member
// failMember gets no reply: what Script.Run calls after a NOSCRIPT.
type runHook struct {
	*hookPrimary
	failMember any
}

func (h *runHook) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	if len(args) > 0 && args[0] == h.failMember {
		c := redis.NewCmd(ctx)
		c.SetErr(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
		return c
	}
	return h.hookPrimary.EvalSha(ctx, sha, keys, args...)
}

// TestRefusedRecordCountedDuringSecondSend: A refused (an error reply), B
// written (its mark passes A), C's reply lost (unknown, sent again). A
// decision made during C's second send counts A: lost at once, not after
// the second send (found in review: D was admitted 4th of 3).
func TestRefusedRecordCountedDuringSecondSend(t *testing.T) {
	s, srv := unrunReplicaStore(t, "refused")
	req := Request{Tenant: "acme", Rules: []Rule{{Name: "r", Limit: 3, Window: time.Minute}}}
	ctx := context.Background()
	rc := srv.Client(t)
	if err := recordScript.Load(ctx, rc).Err(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"A", "B", "C"} {
		d, err := s.Decide(ctx, req)
		if err != nil || !d.Allowed {
			t.Fatalf("%s: %v %+v", name, err, d)
		}
	}
	q := s.replica.recorder.queue
	batch := []record{<-q, <-q, <-q}
	var dD Decision
	var dErr error
	real := s.clients.Primary
	s.clients.Primary = &hookPrimary{UniversalClient: real, onPipe: func(n int, p redis.Pipeliner) redis.Pipeliner {
		switch n {
		case 1:
			return &hookPipe{Pipeliner: p,
				evalsha: func(i int, ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
					if i == 0 { // A: refused by Redis
						return p.Do(ctx, "EVALSHA", sha, "notanumber")
					}
					return p.EvalSha(ctx, sha, keys, args...)
				},
				after: func(cmds []*redis.Cmd) { // C: its reply lost
					cmds[2].SetErr(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
				}}
		default:
			return &hookPipe{Pipeliner: p, before: func() { dD, dErr = s.Decide(ctx, req) }}
		}
	}}
	s.replica.recorder.write(batch, true)
	s.clients.Primary = real
	if dErr != nil {
		t.Fatal(dErr)
	}
	if dD.Allowed {
		t.Fatalf("D admitted (degraded=%v) as 4th of 3 during C's second send: A's refused record taken for shown", dD.Degraded)
	}
}

// TestNoscriptRunsStopAtAnUnknownOutcome: with the script not loaded,
// each record is run on its own after the pipeline's NOSCRIPT. Once A's
// run gets no reply, B is not run ahead of A's second send (found in
// review: B's mark passed A, and the 3rd of 2 was admitted).
func TestNoscriptRunsStopAtAnUnknownOutcome(t *testing.T) {
	s, _ := unrunReplicaStore(t, "noscript")
	req := Request{Tenant: "acme", Rules: []Rule{{Name: "r", Limit: 2, Window: time.Minute}}}
	ctx := context.Background()
	for _, name := range []string{"A", "B"} {
		d, err := s.Decide(ctx, req)
		if err != nil || !d.Allowed {
			t.Fatalf("%s: %v %+v", name, err, d)
		}
	}
	q := s.replica.recorder.queue
	batch := []record{<-q, <-q}
	var dD Decision
	var dErr error
	real := s.clients.Primary
	hp := &hookPrimary{UniversalClient: real, onPipe: func(n int, p redis.Pipeliner) redis.Pipeliner {
		if n == 2 {
			return &hookPipe{Pipeliner: p, before: func() { dD, dErr = s.Decide(ctx, req) }}
		}
		return p
	}}
	s.clients.Primary = &runHook{hookPrimary: hp, failMember: batch[0].args[0]}
	s.replica.recorder.write(batch, true)
	s.clients.Primary = real
	if dErr != nil {
		t.Fatal(dErr)
	}
	if dD.Allowed {
		t.Fatalf("C admitted (degraded=%v) as 3rd of 2 while A's record was unresolved and B's mark passed it", dD.Degraded)
	}
}

// TestShutdownSendsOnce: once the recorder is stopping, a record without
// a reply is not sent a second time (a stalled primary would double the
// drain); it is lost, counted by its gateway.
func TestShutdownSendsOnce(t *testing.T) {
	s, _ := unrunReplicaStore(t, "once")
	req := Request{Tenant: "acme", Rules: []Rule{{Name: "r", Limit: 3, Window: time.Minute}}}
	if !admitter(t, s, req)("A") {
		t.Fatal("A denied")
	}
	real := s.clients.Primary
	hp := &hookPrimary{UniversalClient: real, onPipe: func(_ int, p redis.Pipeliner) redis.Pipeliner {
		return &hookPipe{Pipeliner: p, after: func(cmds []*redis.Cmd) {
			cmds[0].SetErr(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
		}}
	}}
	s.clients.Primary = hp
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.replica.recorder.run(ctx)
	s.clients.Primary = real
	if hp.n != 1 {
		t.Fatalf("%d pipelines sent while stopping; want 1", hp.n)
	}
	if lg := s.replica.shard("acme").logs[Key("once", "acme", "r")]; lg == nil || lg.unseenCost() != 1 {
		t.Fatalf("pending log %+v; want A lost", lg)
	}
}

// TestRecordRefusedWhenSentAgainIsLost: a record without a reply, then
// refused when sent again (say READONLY, the primary demoted), is lost
// like any other failure (found in a final read: it was told neither
// written nor failed).
func TestRecordRefusedWhenSentAgainIsLost(t *testing.T) {
	s, _ := unrunReplicaStore(t, "refusedagain")
	req := Request{Tenant: "acme", Rules: []Rule{{Name: "r", Limit: 3, Window: time.Minute}}}
	if !admitter(t, s, req)("A") {
		t.Fatal("A denied")
	}
	real := s.clients.Primary
	hp := &hookPrimary{UniversalClient: real, onPipe: func(n int, p redis.Pipeliner) redis.Pipeliner {
		if n == 1 {
			return &hookPipe{Pipeliner: p, after: func(cmds []*redis.Cmd) {
				cmds[0].SetErr(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
			}}
		}
		return &hookPipe{Pipeliner: p, evalsha: func(_ int, ctx context.Context, sha string, _ []string, _ ...any) *redis.Cmd {
			return p.Do(ctx, "EVALSHA", sha, "notanumber") // an error reply
		}}
	}}
	s.clients.Primary = hp
	failed := recordsFailed.Get()
	writeQueued(s)
	s.clients.Primary = real
	if hp.n != 2 {
		t.Fatalf("%d pipelines; want 2, the record sent again", hp.n)
	}
	if n := recordsFailed.Get() - failed; n != 1 {
		t.Errorf("%d records counted failed; want 1", n)
	}
	if lg := s.replica.shard("acme").logs[Key("refusedagain", "acme", "r")]; lg == nil || lg.unseenCost() != 1 {
		t.Fatalf("pending log %+v; want A lost", lg)
	}
}
