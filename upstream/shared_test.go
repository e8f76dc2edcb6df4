package upstream_test

import (
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/upstream"
)

// TestRouteRules: a request is decided against its tenant's rules, then
// its route's shared limits and concurrency limit, then its upstream's,
// each scoped; the same inputs of one epoch get the very same slice, and
// a request sent to another pool (a tenant's own upstream) gets that
// pool's shared limits instead.
func TestRouteRules(t *testing.T) {
	perSecond := limiter.Rule{Name: "per_second", Limit: 10, Window: time.Second}
	a, b := spec("http://127.0.0.1:1"), spec("http://127.0.0.1:2")
	a.Limits = []limiter.Rule{{Name: "a_total", Limit: 100, Window: time.Second}}
	p, err := upstream.New(map[string]upstream.Spec{"a": a, "b": b}, []upstream.RouteSpec{
		{Name: "hot", PathPrefix: "/hot", Upstream: "a", Limits: []limiter.Rule{perSecond}, Concurrency: 3, LeaseTTL: 30 * time.Second},
		{PathPrefix: "/", Upstream: "a"},
	}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	hot, plain := p.Match([]byte("x"), []byte("/hot/1")), p.Match([]byte("x"), []byte("/cold"))
	if hot == nil || hot.Name != "hot" || plain == nil || plain.Name != "" {
		t.Fatalf("Match: got %v and %v; want the hot route, then the unnamed one", hot, plain)
	}
	own := []limiter.Rule{{Name: "mine", Limit: 5, Window: time.Minute}}
	epoch := new(int)
	got := hot.Rules(own, hot.Pool, epoch)
	want := []struct {
		name, scope string
		lease       bool
	}{{"mine", "", false}, {"per_second", "route:hot", false}, {upstream.RouteConcurrencyRule, "route:hot", true}, {"a_total", "upstream:a", false}}
	if len(got) != len(want) {
		t.Fatalf("rules %+v; want %d", got, len(want))
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].Scope != w.scope || got[i].Lease != w.lease {
			t.Errorf("rule %d: %+v; want %s in scope %q, lease %v", i, got[i], w.name, w.scope, w.lease)
		}
	}
	if got[2].Limit != 3 || got[2].Window != 30*time.Second {
		t.Errorf("concurrency rule %+v; want limit 3 over the 30s lease TTL", got[2])
	}
	if again := hot.Rules(own, hot.Pool, epoch); &again[0] != &got[0] {
		t.Error("the same rules, pool and epoch built a second slice; want the first")
	}
	if next := hot.Rules(own, hot.Pool, new(int)); &next[0] == &got[0] {
		t.Error("a new epoch reused the old slice")
	}
	other, _ := p.Pool("b")
	if toB := hot.Rules(own, other, epoch); len(toB) != 3 || toB[2].Name != upstream.RouteConcurrencyRule {
		t.Errorf("to upstream b: %+v; want the tenant's and the route's rules, none of a's", toB)
	}
	if bare := plain.Rules(own, other, epoch); &bare[0] != &own[0] {
		t.Error("no shared limits anywhere: want the tenant's own slice")
	}
	if allocs := testing.AllocsPerRun(100, func() { hot.Rules(own, hot.Pool, epoch) }); allocs != 0 {
		t.Errorf("Rules allocates %.0f times once built; want 0", allocs)
	}
}
