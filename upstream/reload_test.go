package upstream_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/upstream"
)

// TestReload: a reload keeps unchanged pools, builds changed ones, moves
// the routes, keeps a dropped pool reachable by name for requests already
// resolved, and runs the health checks of exactly the current pools.
func TestReload(t *testing.T) {
	var checksA, checksB atomic.Int64
	counting := func(n *atomic.Int64) string {
		return testkit.Serve(t, func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) == "/healthz" {
				n.Add(1)
			}
		})
	}
	a, b := counting(&checksA), counting(&checksB)
	checked := func(s upstream.Spec) upstream.Spec {
		s.Health = upstream.HealthSpec{Path: "/healthz", Interval: 10 * time.Millisecond, Timeout: time.Second}
		return s
	}
	p, err := upstream.New(map[string]upstream.Spec{"a": checked(spec(a)), "keep": spec(b)},
		[]upstream.RouteSpec{{PathPrefix: "/", Upstream: "a"}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	running(t, p)
	testkit.Eventually(t, 5*time.Second, checkedOnce("a", &checksA))
	oldA, _ := p.Pool("a")
	keep, _ := p.Pool("keep")
	gen := p.Generation()

	// Invalid: nothing changes.
	if err := p.Reload(map[string]upstream.Spec{"a": spec("ftp://x")}, nil); err == nil {
		t.Fatal("Reload with an invalid target: got no error")
	}
	if got := p.Route([]byte("x"), []byte("/")); got != oldA {
		t.Fatalf("after a refused reload, / routes to %v; want the old pool a", got)
	}
	if p.Generation() != gen {
		t.Errorf("a refused reload changed the generation")
	}

	// a is dropped, b is new, keep is unchanged.
	err = p.Reload(map[string]upstream.Spec{"b": checked(spec(b)), "keep": spec(b)},
		[]upstream.RouteSpec{{PathPrefix: "/", Upstream: "b"}, {PathPrefix: "/keep", Upstream: "keep"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Route([]byte("x"), []byte("/")); got == nil || got.Name != "b" {
		t.Errorf("after the reload, / routes to %v; want b", got)
	}
	if p.Generation() == gen {
		t.Errorf("a reload that took left the generation as it was")
	}
	if got, _ := p.Pool("keep"); got != keep {
		t.Errorf("the unchanged pool keep was rebuilt; want it kept (its connections, health and ejections)")
	}
	if got, ok := p.Pool("a"); !ok || got != oldA {
		t.Errorf("Pool(a) after a was dropped: got %v, %v; want the old pool, for requests resolved before", got, ok)
	}
	resp, err := do(oldA, "GET")
	if err != nil || resp.StatusCode() != 200 {
		t.Errorf("a request on the dropped pool: got %v, %v; want it to finish", resp, err)
	}
	testkit.Eventually(t, 5*time.Second, checkedOnce("the new pool b", &checksB))
	// The dropped pool's checks stop: its count stays put (every 10 ms
	// while they ran).
	testkit.Eventually(t, 5*time.Second, func() error {
		before := checksA.Load()
		time.Sleep(100 * time.Millisecond)
		if after := checksA.Load(); after != before {
			return fmt.Errorf("a's health checks went on after it was dropped: %d → %d", before, after)
		}
		return nil
	})

	// A second reload forgets a altogether.
	if err := p.Reload(map[string]upstream.Spec{"b": checked(spec(b))}, []upstream.RouteSpec{{PathPrefix: "/", Upstream: "b"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Pool("a"); ok {
		t.Error("Pool(a) two reloads after a was dropped: found; want it gone")
	}
	if _, ok := p.Pool("keep"); !ok {
		t.Error("Pool(keep) one reload after it was dropped: not found; want it still reachable")
	}
}

// checkedOnce is a condition: n health checks of the named pool seen.
func checkedOnce(name string, n *atomic.Int64) func() error {
	return func() error {
		if n.Load() == 0 {
			return fmt.Errorf("no health check of %s yet", name)
		}
		return nil
	}
}

// TestReloadKeepsTargetHealth: a pool rebuilt because its settings
// changed takes over its targets' health: a target the checks took out
// stays out, rather than getting traffic until the new pool's first check.
func TestReloadKeepsTargetHealth(t *testing.T) {
	good := testkit.Serve(t, func(*fasthttp.RequestCtx) {})
	dead := testkit.DeadURL(t)
	s := spec(good, dead)
	s.Health = upstream.HealthSpec{Path: "/healthz", Interval: 10 * time.Millisecond, Timeout: time.Second}
	p, err := upstream.New(map[string]upstream.Spec{"u": s}, []upstream.RouteSpec{{Upstream: "u"}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	running(t, p)
	healthy := func(want int) func() error {
		return func() error {
			pool, _ := p.Pool("u")
			if got := pool.Healthy(); got != want {
				return fmt.Errorf("%d healthy targets; want %d", got, want)
			}
			return nil
		}
	}
	testkit.Eventually(t, 5*time.Second, healthy(1))
	s.Timeout = 3 * time.Second // a change: the pool is rebuilt
	s.Health.Interval = time.Hour
	if err := p.Reload(map[string]upstream.Spec{"u": s}, []upstream.RouteSpec{{Upstream: "u"}}); err != nil {
		t.Fatal(err)
	}
	if err := healthy(1)(); err != nil {
		t.Errorf("right after the rebuild: %v (the dead target was readmitted)", err)
	}
}

// TestReloadAfterRunStartsNoChecks: once Run has returned, a reload
// starts no health check.
func TestReloadAfterRunStartsNoChecks(t *testing.T) {
	var checks atomic.Int64
	u := testkit.Serve(t, func(*fasthttp.RequestCtx) { checks.Add(1) })
	p, err := upstream.New(map[string]upstream.Spec{"a": spec(u)}, []upstream.RouteSpec{{Upstream: "a"}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Run(ctx)
	s := spec(u)
	s.Health = upstream.HealthSpec{Path: "/healthz", Interval: 10 * time.Millisecond, Timeout: time.Second}
	if err := p.Reload(map[string]upstream.Spec{"b": s}, []upstream.RouteSpec{{Upstream: "b"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := checks.Load(); n != 0 {
		t.Errorf("%d health checks after Run returned; want none", n)
	}
}

// running runs p's health checks until the test ends.
func running(t *testing.T, p *upstream.Proxy) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}
