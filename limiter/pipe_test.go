package limiter_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/limiter/storetest"
)

// newStoreWith is newRedisStore with a budget and options of the test's own.
func newStoreWith(t *testing.T, addr string, budget time.Duration, o limiter.Options) *limiter.RedisStore {
	t.Helper()
	clients, err := limiter.NewClients(redisOptions(limiter.ModeStandalone, addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clients.Close() })
	o.Consistency = limiter.ConsistencyExact
	o.KeyPrefix = fmt.Sprintf("t%d", instances.Add(1))
	s, err := limiter.NewRedisStore(clients, o, budget, fmt.Sprintf("gw%d", instances.Add(1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestSilentRedisFailsWithBudgetError: a stalled Redis (SIGSTOP) answers
// nothing; a decision gives up with ErrBudget, and once Redis runs again
// decisions are answered again.
func TestSilentRedisFailsWithBudgetError(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	s := newStoreWith(t, srv.Addr(), 100*time.Millisecond, limiter.Options{})
	req := limiter.Request{Tenant: "acme", Rules: []limiter.Rule{{Name: "r", Limit: 1000, Window: time.Minute}}}
	decideOK(t, s, "acme", req.Rules...)
	srv.Stall()
	for range 3 {
		if _, err := s.Decide(context.Background(), req); !errors.Is(err, limiter.ErrBudget) {
			t.Fatalf("Redis stalled: got %v; want ErrBudget", err)
		}
	}
	srv.Resume()
	testkit.Eventually(t, 5*time.Second, func() error {
		if _, err := s.Decide(context.Background(), req); err != nil {
			return fmt.Errorf("Redis resumed: still %w", err)
		}
		return nil
	})
}

// TestBusyGatewayIsNotASilentRedis is the overload invariant at its root:
// with Redis healthy, a gateway whose CPUs are saturated (goroutines
// spinning on every core) waits longer for its answers, far past the
// budget, but never reports Redis as silent. A budget clock inside the
// process (a timer per decision) gives up on most of these.
func TestBusyGatewayIsNotASilentRedis(t *testing.T) {
	srv := redistest.Server(t)
	// Generous: Redis shares the two CPUs the spinners saturate, and its
	// own answers must stay within it. In-process delays still pass it
	// many times over (see the last check).
	const budget = 100 * time.Millisecond
	s := newStoreWith(t, srv.Addr(), budget, limiter.Options{QueueTimeout: time.Minute})
	rules := []limiter.Rule{{Name: "r", Limit: 1 << 40, Window: time.Minute}}
	decideOK(t, s, "warm", rules...)

	var stop atomic.Bool
	var spinners sync.WaitGroup
	for range 8 * runtime.GOMAXPROCS(0) {
		spinners.Add(1)
		go func() {
			defer spinners.Done()
			// Busy inside this process only: the spinner keeps a P, but its
			// thread runs at nice 19, so Redis and the tests of other
			// packages running meanwhile keep their CPU.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
			for x := 0; !stop.Load(); x++ {
				_ = x * x
			}
		}()
	}
	var slowest atomic.Int64
	var failed, budgetErrs atomic.Int64
	var firstErr atomic.Pointer[error]
	var callers sync.WaitGroup
	for g := range 64 {
		callers.Add(1)
		go func() {
			defer callers.Done()
			req := limiter.Request{Tenant: fmt.Sprintf("t%d", g%8), Rules: rules}
			for range 20 {
				start := time.Now()
				_, err := s.Decide(context.Background(), req)
				if took := int64(time.Since(start)); took > slowest.Load() {
					slowest.Store(took)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
				}
				if errors.Is(err, limiter.ErrBudget) {
					budgetErrs.Add(1)
				} else if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	callers.Wait()
	stop.Store(true)
	spinners.Wait()
	if n := budgetErrs.Load(); n != 0 {
		t.Errorf("%d of 1280 decisions gave up on a healthy Redis because the gateway was busy; want 0 (first: %v)", n, *firstErr.Load())
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d decisions failed otherwise; want 0 (first: %v)", n, *firstErr.Load())
	}
	// Proof the gateway was busy enough to matter: some decision took
	// longer than the budget from call to answer.
	if d := time.Duration(slowest.Load()); d <= budget {
		t.Errorf("slowest decision took %v, within the budget %v: the test did not saturate the process", d, budget)
	}
	t.Logf("slowest decision: %v (budget %v)", time.Duration(slowest.Load()), budget)
}

// TestQueueTimeoutSheds: a decision that waited in the gateway longer than
// the queue timeout is shed with ErrOverload, and nothing reaches Redis.
func TestQueueTimeoutSheds(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	s := newStoreWith(t, srv.Addr(), time.Second, limiter.Options{QueueTimeout: time.Nanosecond})
	rules := []limiter.Rule{{Name: "r", Limit: 10, Window: time.Minute}}
	for range 5 {
		_, err := s.Decide(context.Background(), limiter.Request{Tenant: "acme", Rules: rules})
		if !errors.Is(err, limiter.ErrOverload) {
			t.Fatalf("queue timeout 1ns: got %v; want ErrOverload", err)
		}
	}
	if n, err := srv.Client(t).DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Fatalf("Redis holds %d keys (%v) after shed decisions; want 0", n, err)
	}
}

// TestConcurrentDecisionsShareWrites: many concurrent decisions of one
// tenant travel in batches, and those of one batch share a script call,
// whatever the rules' algorithms and however many, so Redis runs fewer
// calls than decisions; every decision is still counted once. (A window of a day and
// a month's quota: their buckets turn over mid-test once in a long while.)
func TestConcurrentDecisionsShareWrites(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	c := srv.Client(t)
	s := newStoreWith(t, srv.Addr(), time.Second, limiter.Options{})
	log := limiter.Rule{Name: "log", Limit: 1 << 30, Window: time.Minute}
	window := limiter.Rule{Name: "window", Limit: 1 << 30, Window: 24 * time.Hour, Algorithm: limiter.AlgoSlidingWindow}
	quota := limiter.Rule{Name: "quota", Limit: 1 << 30, Algorithm: limiter.AlgoFixed, Period: limiter.PeriodMonth}
	for _, tc := range []struct {
		tenant string
		rules  []limiter.Rule
	}{
		{"log", []limiter.Rule{log}}, {"window", []limiter.Rule{window}}, {"quota", []limiter.Rule{quota}},
		{"all three", []limiter.Rule{log, window, quota}},
	} {
		t.Run(tc.tenant, func(t *testing.T) {
			decideOK(t, s, tc.tenant, tc.rules...)
			before := commands(t, c, "evalsha")
			storetest.Burst(t, s, limiter.Request{Tenant: tc.tenant, Rules: tc.rules}, 50, 20)
			if n := commands(t, c, "evalsha") - before; n < 1 || n >= 1000 {
				t.Fatalf("Redis ran %d calls for 1000 decisions of one tenant; want fewer, shared", n)
			}
			d := decideOK(t, s, tc.tenant, tc.rules...)
			for i, st := range d.Rules[:d.N] {
				if st.Remaining != 1<<30-1002 {
					t.Fatalf("rule %s: remaining %d; want %d", tc.rules[i].Name, st.Remaining, 1<<30-1002)
				}
			}
		})
	}
}

// TestLeastPrivilegeACLUser: a user that may run scripts but not the
// @dangerous commands (ROLE among them) decides in standalone mode: the
// decision connections send ROLE only where Sentinel could name a stale
// primary (found in review: every dial failed with NOPERM).
func TestLeastPrivilegeACLUser(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	if err := srv.Client(t).Do(context.Background(), "ACL", "SETUSER", "limiter", "on", ">s3cret", "~*", "+@all", "-@dangerous").Err(); err != nil {
		t.Fatal(err)
	}
	o := redisOptions(limiter.ModeStandalone, srv.Addr())
	o.Username, o.Password = "limiter", "s3cret"
	s, _ := newRedisStore(t, o, false)
	if d := decideOK(t, s, "acme", limiter.Rule{Name: "r", Limit: 10, Window: time.Minute}); !d.Allowed {
		t.Fatal("denied; want allowed")
	}
}

// TestClusterReplicaDenies: in Cluster mode the replica's word is had (its
// connections send READONLY; found in review: every peek got MOVED).
func TestClusterReplicaDenies(t *testing.T) {
	t.Parallel()
	cl := redistest.Cluster(t, redistest.ClusterOptions{})
	s, _ := newRedisStore(t, redisOptions(limiter.ModeCluster, cl.Addrs()...), false)
	req := limiter.Request{Tenant: "acme", Rules: []limiter.Rule{{Name: "r", Limit: 2, Window: time.Minute}}}
	for range 2 {
		decideOK(t, s, "acme", req.Rules...)
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if _, denied, err := s.ReplicaDenies(context.Background(), req, time.Second); err != nil || !denied {
			return fmt.Errorf("the replica does not show the full rule: denied=%v err=%v", denied, err)
		}
		return nil
	})
}

// TestClusterMigratingSlotIsFollowed: while the tenant's slot migrates
// (resharding a healthy cluster), the source answers ASK for keys it does
// not hold; the decision follows it to the target, with ASKING, as go-redis
// did (found in review: it failed instead).
func TestClusterMigratingSlotIsFollowed(t *testing.T) {
	t.Parallel()
	cl := redistest.Cluster(t, redistest.ClusterOptions{ReplicasPerPrimary: -1})
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeCluster, cl.Addrs()...), false)
	key := limiter.Key(prefix, "acme", "r")
	src := cl.PrimaryFor(t, key)
	var dst *redistest.Node
	for _, p := range cl.Primaries() {
		if p != src {
			dst = p
			break
		}
	}
	ctx := context.Background()
	slot, err := src.Client(t).ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Client(t).Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", cl.ID(src)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := src.Client(t).Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", cl.ID(dst)).Err(); err != nil {
		t.Fatal(err)
	}
	r := limiter.Rule{Name: "r", Limit: 5, Window: time.Minute}
	for i := range 3 {
		if d := decideOK(t, s, "acme", r); d.Rules[0].Remaining != int64(4-i) {
			t.Fatalf("decision %d during the migration: remaining %d; want %d", i+1, d.Rules[0].Remaining, 4-i)
		}
	}
}

// TestShortSilenceSparesTheQueue: Redis silent (SIGSTOP) a little longer
// than a budget fails the decision on the wire, but not one that joined
// the queue behind it a moment ago: that one waits its own budget, and is
// decided once Redis answers again. Before, every queued decision failed
// as soon as the lanes were stuck.
func TestShortSilenceSparesTheQueue(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	const budget = 400 * time.Millisecond
	s := newStoreWith(t, srv.Addr(), budget, limiter.Options{})
	rules := []limiter.Rule{{Name: "r", Limit: 1000, Window: time.Minute}}
	decideOK(t, s, "warm", rules...)
	srv.Stall()
	start := time.Now()
	decided := func(tenant string) <-chan error {
		c := make(chan error, 1)
		go func() {
			d, err := s.Decide(context.Background(), limiter.Request{Tenant: tenant, Rules: rules})
			if err == nil && !d.Allowed {
				err = errors.New("denied")
			}
			c <- err
		}()
		return c
	}
	onWire := decided("a") // on the only lane's wire, unanswered
	time.Sleep(300 * time.Millisecond)
	queued := decided("b") // queued behind it
	time.Sleep(time.Until(start.Add(550 * time.Millisecond)))
	srv.Resume() // past a's budget, within b's
	if err := <-onWire; !errors.Is(err, limiter.ErrBudget) {
		t.Fatalf("the decision on the wire: %v; want ErrBudget (Redis was silent past its budget)", err)
	}
	if err := <-queued; err != nil {
		t.Fatalf("the decision queued 250 ms before Redis answered again: %v; want it decided", err)
	}
}
