package degrade_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeStore answers with err, counting its calls; its replica answers with
// replica (nil: no replica to ask).
type fakeStore struct {
	mu      sync.Mutex
	err     error
	calls   int
	replica *fakeReplica
}

// fakeReplica shows the rule full (or room), or fails with err.
type fakeReplica struct {
	full   bool
	err    error
	asked  int
	within time.Duration
}

func (f *fakeStore) Decide(_ context.Context, req limiter.Request) (limiter.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return limiter.Decision{}, f.err
	}
	return limiter.Decision{Allowed: true, N: len(req.Rules)}, nil
}

func (f *fakeStore) Shard(string) string { return "" }

func (f *fakeStore) Release(string, limiter.Rule, uint64) {}
func (f *fakeStore) Renew(string, limiter.Rule, uint64)   {}

func (f *fakeStore) ReplicaDenies(_ context.Context, _ limiter.Request, within time.Duration) (limiter.Decision, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.replica
	if r == nil {
		return limiter.Decision{}, false, nil
	}
	r.asked++
	r.within = within
	if r.err != nil || !r.full {
		return limiter.Decision{}, false, r.err
	}
	d := limiter.Decision{N: 1}
	d.Rules[0] = limiter.RuleState{Limit: 10, RetryAfter: time.Second, Reset: time.Second}
	return d, true, nil
}

func (f *fakeStore) set(err error) {
	f.mu.Lock()
	f.err = err
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

func newGuard(t *testing.T, store degrade.Store, s degrade.Settings) *degrade.Guard {
	t.Helper()
	g, err := degrade.New(store, s, degrade.Options{Log: quiet})
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
			g := newGuard(t, &fakeStore{err: errors.New("READONLY You can't write against a read only replica")}, settings(tc.mode))
			v := decide(g, req)
			if v.Allowed != tc.allowed || v.Degraded != tc.degraded || v.Refused != tc.refused {
				t.Fatalf("got allowed=%v degraded=%v refused=%v; want %v %v %v", v.Allowed, v.Degraded, v.Refused, tc.allowed, tc.degraded, tc.refused)
			}
		})
	}
}

func TestFailLocalEnforcesAShareOfTheLimit(t *testing.T) {
	g := newGuard(t, &fakeStore{err: errors.New("connection refused")}, settings(degrade.FailLocal))
	allowed := 0
	for range 20 {
		v := decide(g, req)
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

// TestFailLocalShadowRulesNeverDeny: in fail mode local a shadow rule is
// decided at its share of the limit too, and says so, but denies nothing.
func TestFailLocalShadowRulesNeverDeny(t *testing.T) {
	g := newGuard(t, &fakeStore{err: errors.New("connection refused")}, settings(degrade.FailLocal))
	shadowed := limiter.Request{Tenant: "acme", Rules: []limiter.Rule{{Name: "r", Limit: 100, Window: time.Minute},
		{Name: "trial", Limit: 4, Window: time.Minute, Mode: limiter.RuleShadow}}}
	for i := 1; i <= 5; i++ {
		v := decide(g, shadowed)
		if !v.Allowed || v.Decision.ShadowDenied() != (i > 2) {
			t.Fatalf("request %d: got allowed=%v shadow-denied=%v; want true %v (4 over 2 expected gateways)", i, v.Allowed, v.Decision.ShadowDenied(), i > 2)
		}
	}
}

// TestBudgetErrorDegrades: the store's word that Redis stayed silent past
// the budget is a degraded verdict; its next answer is taken again.
func TestBudgetErrorDegrades(t *testing.T) {
	store := &fakeStore{err: fmt.Errorf("%w: no reply from 127.0.0.1:6379 for 12ms", limiter.ErrBudget)}
	g := newGuard(t, store, settings(degrade.FailOpen))
	if v := decide(g, req); !v.Degraded || !v.Allowed {
		t.Fatalf("silent Redis: got %+v; want a degraded admit", v)
	}
	store.set(nil)
	if v := decide(g, req); v.Degraded || !v.Allowed {
		t.Fatalf("Redis answers again: got %+v; want the store's answer", v)
	}
}

// TestOverloadIsShedNotDegraded: a decision the gateway could not send in
// time is neither admitted nor degraded, and says nothing to the breaker.
func TestOverloadIsShedNotDegraded(t *testing.T) {
	for _, mode := range []string{degrade.FailOpen, degrade.FailClosed, degrade.FailLocal} {
		t.Run(mode, func(t *testing.T) {
			store := &fakeStore{err: fmt.Errorf("decide for t: %w", limiter.ErrOverload), replica: &fakeReplica{}}
			g := newGuard(t, store, settings(mode))
			for range 10 {
				v := decide(g, req)
				if !v.Overloaded || v.Allowed || v.Degraded || v.Refused {
					t.Fatalf("overload: got %+v; want overloaded only", v)
				}
			}
			if g.BreakerState() != degrade.Closed {
				t.Fatalf("after 10 overloads: breaker %v; want closed", g.BreakerState())
			}
			if store.replica.asked != 0 {
				t.Fatalf("overload asked the replica %d times; want 0", store.replica.asked)
			}
		})
	}
}

func TestBreakerStopsCallingAFailingStore(t *testing.T) {
	store := &fakeStore{err: errors.New("connection refused")}
	g := newGuard(t, store, settings(degrade.FailOpen))
	for range 3 {
		decide(g, req)
	}
	if g.BreakerState() != degrade.Open {
		t.Fatalf("after 3 failures: breaker %v; want open", g.BreakerState())
	}
	before := store.count()
	for range 100 {
		if v := decide(g, req); !v.Degraded || !v.Allowed {
			t.Fatalf("breaker open: got %+v; want a degraded admit", v)
		}
	}
	if n := store.count() - before; n != 0 {
		t.Fatalf("breaker open: the store was called %d times; want 0", n)
	}
}

func TestReplicaDenialWhileThePrimaryIsDown(t *testing.T) {
	down := &fakeStore{err: errors.New("connection refused"), replica: &fakeReplica{full: true}}
	g := newGuard(t, down, settings(degrade.FailOpen))
	v := decide(g, req)
	if v.Allowed || !v.Degraded || v.Decision.RetryAfter() != time.Second {
		t.Fatalf("replica shows the rule full: got allowed=%v degraded=%v retry=%v; want a degraded denial", v.Allowed, v.Degraded, v.Decision.RetryAfter())
	}
	down.replica = &fakeReplica{err: errors.New("replica down too")}
	if v := decide(g, req); !v.Allowed || !v.Degraded {
		t.Fatalf("replica down too: got %+v; want the fail mode (open)", v)
	}
}

// TestOneBudgetPerDecision: the replica gets what the primary left of the
// budget, so a decision never waits two budgets.
func TestOneBudgetPerDecision(t *testing.T) {
	s := settings(degrade.FailOpen)
	store := &fakeStore{err: errors.New("connection refused"), replica: &fakeReplica{}}
	g := newGuard(t, store, s)
	if v := decide(g, req); !v.Allowed || !v.Degraded {
		t.Fatalf("primary refused, replica shows room: got %+v; want the fail mode (admit, degraded)", v)
	}
	if r := store.replica; r.asked != 1 || r.within <= 0 || r.within > s.Budget {
		t.Fatalf("replica asked %d times within %v; want once, within (0, %v]", r.asked, r.within, s.Budget)
	}
}

func TestMemoryStoreDecidesDirectly(t *testing.T) {
	g := newGuard(t, limiter.NewMemoryStore(nil), settings(degrade.FailOpen))
	r := limiter.Request{Tenant: "t", Rules: []limiter.Rule{{Name: "r", Limit: 1, Window: time.Minute}}}
	if v := decide(g, r); !v.Allowed || v.Degraded {
		t.Fatalf("1st: got %+v; want allowed, not degraded", v)
	}
	if v := decide(g, r); v.Allowed || v.Degraded {
		t.Fatalf("2nd: got allowed=%v degraded=%v; want denied, not degraded", v.Allowed, v.Degraded)
	}
}

func TestUnsupportedFailMode(t *testing.T) {
	if _, err := degrade.New(&fakeStore{}, degrade.Settings{FailMode: "sideways"}, degrade.Options{}); err == nil {
		t.Fatal("New with fail mode sideways: no error")
	}
}

func BenchmarkGuardDecide(b *testing.B) {
	g, err := degrade.New(&fakeStore{}, settings(degrade.FailOpen), degrade.Options{Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var v degrade.Verdict
	for b.Loop() {
		if g.Decide(context.Background(), req, &v); !v.Allowed {
			b.Fatal("denied")
		}
	}
}

// TestOneFailedCallCountsOnce: the decisions of one failed call to Redis
// (a batch) fail together; the breaker counts the call once, so one slow
// batch does not open it, and distinct failed calls do.
func TestOneFailedCallCountsOnce(t *testing.T) {
	call := &limiter.CallError{ID: 7, Err: fmt.Errorf("%w: no reply for 11ms", limiter.ErrBudget)}
	store := &fakeStore{err: fmt.Errorf("decide for t: %w", call)}
	g := newGuard(t, store, settings(degrade.FailOpen)) // opens after 3 failures
	for range 50 {
		if v := decide(g, req); !v.Degraded {
			t.Fatalf("got %+v; want degraded", v)
		}
	}
	if g.BreakerState() != degrade.Closed {
		t.Fatalf("50 decisions of one failed call: breaker %v; want closed", g.BreakerState())
	}
	for id := uint64(8); id < 11; id++ {
		store.set(fmt.Errorf("decide for t: %w", &limiter.CallError{ID: id, Err: limiter.ErrBudget}))
		decide(g, req)
	}
	if g.BreakerState() != degrade.Open {
		t.Fatalf("3 more failed calls: breaker %v; want open", g.BreakerState())
	}
}

// TestFailedCallsCountInAnyOrder: calls that fail together come back in
// any order; each counts once, the older ones too.
func TestFailedCallsCountInAnyOrder(t *testing.T) {
	store := &fakeStore{}
	g := newGuard(t, store, settings(degrade.FailOpen)) // opens after 3 failures
	for _, id := range []uint64{20, 19, 20, 18} {
		store.set(fmt.Errorf("decide for t: %w", &limiter.CallError{ID: id, Err: limiter.ErrBudget}))
		decide(g, req)
	}
	if g.BreakerState() != degrade.Open {
		t.Fatalf("3 distinct failed calls, out of order: breaker %v; want open", g.BreakerState())
	}
}

// decide is g.Decide returning the verdict.
func decide(g *degrade.Guard, req limiter.Request) degrade.Verdict {
	var v degrade.Verdict
	g.Decide(context.Background(), req, &v)
	return v
}
