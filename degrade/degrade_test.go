package degrade_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeStore answers after delay with err, counting its calls.
type fakeStore struct {
	mu    sync.Mutex
	delay time.Duration
	err   error
	calls int
	gate  chan struct{} // if not nil, every call waits for it to close
}

func (f *fakeStore) Decide(ctx context.Context, req limiter.Request) (limiter.Decision, error) {
	f.mu.Lock()
	f.calls++
	delay, err, gate := f.delay, f.err, f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	time.Sleep(delay)
	if err != nil {
		return limiter.Decision{}, err
	}
	return limiter.Decision{Allowed: true, N: len(req.Rules)}, nil
}

func (f *fakeStore) set(delay time.Duration, err error) {
	f.mu.Lock()
	f.delay, f.err = delay, err
	f.mu.Unlock()
}

func (f *fakeStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

var req = limiter.Request{Tenant: "t", Rules: []limiter.Rule{{Name: "r", Limit: 10, Window: time.Minute}}}

func settings(mode string) degrade.Settings {
	return degrade.Settings{Budget: 50 * time.Millisecond, FailMode: mode, ExpectedGateways: 2,
		Breaker: degrade.BreakerOptions{Failures: 3, Cooldown: time.Hour}}
}

func newGuard(t *testing.T, store limiter.Store, s degrade.Settings, replica degrade.ReplicaChecker) *degrade.Guard {
	t.Helper()
	g, err := degrade.New(store, s, degrade.Options{Blocking: true, Replica: replica, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestFailModes(t *testing.T) {
	cases := []struct {
		mode                       string
		allowed, degraded, refused bool
	}{
		{degrade.FailOpen, true, true, false},
		{degrade.FailClosed, false, true, true},
		{degrade.FailLocal, true, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			g := newGuard(t, &fakeStore{err: errors.New("READONLY You can't write against a read only replica")}, settings(tc.mode), nil)
			v := g.Decide(context.Background(), req)
			if v.Allowed != tc.allowed || v.Degraded != tc.degraded || v.Refused != tc.refused {
				t.Fatalf("got allowed=%v degraded=%v refused=%v; want %v %v %v", v.Allowed, v.Degraded, v.Refused, tc.allowed, tc.degraded, tc.refused)
			}
		})
	}
}

func TestFailLocalEnforcesAShareOfTheLimit(t *testing.T) {
	g := newGuard(t, &fakeStore{err: errors.New("connection refused")}, settings(degrade.FailLocal), nil)
	allowed := 0
	for range 20 {
		v := g.Decide(context.Background(), req)
		if !v.Degraded {
			t.Fatal("verdict not degraded")
		}
		if v.Allowed {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("limit 10 over 2 expected gateways: %d of 20 admitted locally; want 5", allowed)
	}
}

func TestBudgetBoundsTheWait(t *testing.T) {
	// The store would answer "allowed, not degraded" after 400ms; a
	// degraded verdict means the budget (50ms) answered first.
	store := &fakeStore{delay: 400 * time.Millisecond}
	g := newGuard(t, store, settings(degrade.FailOpen), nil)
	if v := g.Decide(context.Background(), req); !v.Degraded || !v.Allowed {
		t.Fatalf("slow store: got %+v; want a degraded admit", v)
	}
	store.set(0, nil)
	if v := g.Decide(context.Background(), req); v.Degraded {
		t.Fatal("fast store after a slow call: degraded; want the store's answer")
	}
}

func TestBreakerStopsCallingAFailingStore(t *testing.T) {
	store := &fakeStore{err: errors.New("connection refused")}
	g := newGuard(t, store, settings(degrade.FailOpen), nil)
	for range 3 {
		g.Decide(context.Background(), req)
	}
	if g.BreakerState() != degrade.Open {
		t.Fatalf("after 3 failures: breaker %v; want open", g.BreakerState())
	}
	before := store.count()
	for range 100 {
		if v := g.Decide(context.Background(), req); !v.Degraded || !v.Allowed {
			t.Fatalf("breaker open: got %+v; want a degraded admit", v)
		}
	}
	if n := store.count() - before; n != 0 {
		t.Fatalf("breaker open: the store was called %d times; want 0", n)
	}
}

func TestInflightCapShedsInsteadOfPilingUp(t *testing.T) {
	gate := make(chan struct{})
	store := &fakeStore{gate: gate}
	s := settings(degrade.FailOpen)
	s.Budget = time.Millisecond
	s.Breaker.Failures = 1 << 30 // keep the breaker out of it
	g := newGuard(t, store, s, nil)
	for range 1100 {
		g.Decide(context.Background(), req)
	}
	if n := store.count(); n > 1024 {
		t.Fatalf("%d calls in flight against a stalled store; want at most 1024", n)
	}
	close(gate)
}

// replicaFull is a replica that shows the rule full.
type replicaFull struct{ err error }

func (r replicaFull) ReplicaDenies(_ context.Context, req limiter.Request) (limiter.Decision, bool, error) {
	d := limiter.Decision{N: 1}
	d.Rules[0] = limiter.RuleState{Limit: 10, RetryAfter: time.Second, Reset: time.Second}
	return d, r.err == nil, r.err
}

func TestReplicaDenialWhileThePrimaryIsDown(t *testing.T) {
	down := &fakeStore{err: errors.New("connection refused")}
	g := newGuard(t, down, settings(degrade.FailOpen), replicaFull{})
	v := g.Decide(context.Background(), req)
	if v.Allowed || !v.Degraded || v.RetryAfter() != time.Second {
		t.Fatalf("replica shows the rule full: got allowed=%v degraded=%v retry=%v; want a degraded denial", v.Allowed, v.Degraded, v.RetryAfter())
	}
	g = newGuard(t, down, settings(degrade.FailOpen), replicaFull{err: errors.New("replica down too")})
	if v := g.Decide(context.Background(), req); !v.Allowed || !v.Degraded {
		t.Fatalf("replica down too: got %+v; want the fail mode (open)", v)
	}
}

func TestDirectStoreIsNotBudgeted(t *testing.T) {
	g, err := degrade.New(limiter.NewMemoryStore(nil), settings(degrade.FailOpen), degrade.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	r := limiter.Request{Tenant: "t", Rules: []limiter.Rule{{Name: "r", Limit: 1, Window: time.Minute}}}
	if v := g.Decide(context.Background(), r); !v.Allowed || v.Degraded {
		t.Fatalf("1st: got %+v; want allowed, not degraded", v)
	}
	if v := g.Decide(context.Background(), r); v.Allowed || v.Degraded {
		t.Fatalf("2nd: got allowed=%v degraded=%v; want denied, not degraded", v.Allowed, v.Degraded)
	}
}

func TestUnsupportedFailMode(t *testing.T) {
	if _, err := degrade.New(&fakeStore{}, degrade.Settings{FailMode: "sideways"}, degrade.Options{}); err == nil {
		t.Fatal("New with fail mode sideways: no error")
	}
}

// countingReplica counts the questions it is asked and shows room.
type countingReplica struct {
	mu sync.Mutex
	n  int
}

func (r *countingReplica) ReplicaDenies(context.Context, limiter.Request) (limiter.Decision, bool, error) {
	r.mu.Lock()
	r.n++
	r.mu.Unlock()
	return limiter.Decision{}, false, nil
}

func (r *countingReplica) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// TestOneBudgetPerDecision: the replica gets what the primary left of the
// budget, so a decision never waits two budgets.
func TestOneBudgetPerDecision(t *testing.T) {
	slow := &countingReplica{}
	g := newGuard(t, &fakeStore{delay: 300 * time.Millisecond}, settings(degrade.FailOpen), slow)
	g.Decide(context.Background(), req)
	if n := slow.count(); n != 0 {
		t.Fatalf("primary spent the whole budget: the replica was asked %d times; want 0", n)
	}
	fast := &countingReplica{}
	g = newGuard(t, &fakeStore{err: errors.New("connection refused")}, settings(degrade.FailOpen), fast)
	if v := g.Decide(context.Background(), req); !v.Allowed || !v.Degraded {
		t.Fatalf("primary refused, replica shows room: got %+v; want the fail mode (admit, degraded)", v)
	}
	if n := fast.count(); n != 1 {
		t.Fatalf("primary failed fast: the replica was asked %d times; want 1", n)
	}
}
