package storetest

import (
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// sharedCountsAcrossTenants: a shared limit (Rule.Scope) counts every
// tenant's requests together, and a request a tenant's own rule refuses
// is not counted by it.
func sharedCountsAcrossTenants(t *testing.T, e Env, tenant string) {
	shared := limiter.Rule{Name: "upstream_rate", Limit: 3, Window: time.Minute, Scope: "upstream:" + tenant}
	own := limiter.Rule{Name: "own", Limit: 1, Window: time.Minute}
	a, b := tenant+"-a", tenant+"-b"
	if d := decide(t, e.Store, a, own, shared); !d.Allowed || d.Rules[1].Remaining != 2 {
		t.Fatalf("a's first: %+v; want admitted, 2 left of the shared limit", d.States())
	}
	if d := decide(t, e.Store, a, own, shared); d.Allowed || !d.Rules[0].Denied() || d.Rules[1].Denied() {
		t.Fatalf("a's second: %+v; want denied by a's own rule alone", d.States())
	}
	for i := range 2 {
		if d := decide(t, e.Store, b, shared); !d.Allowed || d.Rules[0].Remaining != int64(1-i) {
			t.Fatalf("b's request %d: %+v; want admitted, %d left (a's refused request not counted)", i+1, d.States(), 1-i)
		}
	}
	d := decide(t, e.Store, b, shared)
	if d.Allowed || !d.Rules[0].Denied() || d.Rules[0].RetryAfter > time.Minute {
		t.Fatalf("b's third: %+v; want denied by the shared limit, a's and b's counted together", d.States())
	}
	if d := decide(t, e.Store, b, limiter.Rule{Name: "upstream_rate", Limit: 3, Window: time.Minute}); !d.Allowed {
		t.Fatalf("b's own rule of the shared rule's name: %+v; want admitted (a count of its own)", d.States())
	}
}

// sharedLeaseCapsEveryTenant: a shared concurrency limit (a Lease rule
// with a Scope) counts every tenant's requests in flight together, and a
// lease given back by one tenant's request frees a place for another's.
func sharedLeaseCapsEveryTenant(t *testing.T, e Env, tenant string) {
	lease := limiter.Rule{Name: "route_concurrency", Limit: 2, Window: time.Minute, Lease: true, Scope: "route:" + tenant}
	a, b := tenant+"-a", tenant+"-b"
	first := decide(t, e.Store, a, lease)
	if !first.Allowed {
		t.Fatalf("a's first: %+v; want admitted", first.States())
	}
	if d := decide(t, e.Store, b, lease); !d.Allowed || d.Rules[0].Remaining != 0 {
		t.Fatalf("b's first: %+v; want admitted, none left", d.States())
	}
	if d := decide(t, e.Store, b, lease); d.Allowed || d.Rules[0].RetryAfter != limiter.RetryLease {
		t.Fatalf("b's second, a's and b's in flight: %+v; want denied, retry %v", d.States(), limiter.RetryLease)
	}
	own := limiter.Rule{Name: "route_concurrency", Limit: 2, Window: time.Minute, Lease: true}
	if d := decide(t, e.Store, b, own); !d.Allowed {
		t.Fatalf("b's own lease rule of the shared rule's name: %+v; want admitted (a set of its own)", d.States())
	}
	releaser(t, e).Release(a, lease, first.Seq)
	admitWhenFree(t, e, b, lease)
}

// fillShared takes the whole of shared (limit 1) for another tenant.
func fillShared(t *testing.T, e Env, tenant string, shared limiter.Rule) {
	t.Helper()
	if d := decide(t, e.Store, tenant+"-other", shared); !d.Allowed {
		t.Fatalf("the other tenant's request: %+v; want admitted", d.States())
	}
}

// sharedRefusalRecordsNothing: a request the shared limit refuses is
// recorded in none of the tenant's own rules (a sliding log, a
// concurrency limit), whose states say so, and the tenant's next request
// fits. On Redis Cluster that is an undo: the tenant's rules are decided,
// and recorded, in a call before the shared limit's.
func sharedRefusalRecordsNothing(t *testing.T, e Env, tenant string) {
	shared := limiter.Rule{Name: "upstream_rate", Limit: 1, Window: time.Minute, Scope: "upstream:" + tenant}
	own := limiter.Rule{Name: "own", Limit: 1, Window: time.Minute}
	lease := limiter.Rule{Name: "concurrency", Limit: 1, Window: time.Minute, Lease: true}
	fillShared(t, e, tenant, shared)
	d := decide(t, e.Store, tenant, own, lease, shared)
	if d.Allowed || !d.Rules[2].Denied() || d.Rules[0].Denied() || d.Rules[1].Denied() {
		t.Fatalf("refused by the shared limit: %+v; want denied by it alone", d.States())
	}
	for i, st := range d.States()[:2] {
		if st.Remaining != 1 || st.Reset != 0 {
			t.Fatalf("own rule %d of a refused request: %+v; want 1 left, no reset (nothing recorded)", i, st)
		}
	}
	if d := decide(t, e.Store, tenant, own, lease); !d.Allowed || d.Rules[0].Remaining != 0 || d.Rules[1].Remaining != 0 {
		t.Fatalf("the tenant's own rules after the refusal: %+v; want admitted, 0 left", d.States())
	}
}

// sharedRefusalRecordsNoCount: the same for the counter algorithms, a
// sliding window and a fixed quota.
func sharedRefusalRecordsNoCount(t *testing.T, e Env, tenant string) {
	shared := limiter.Rule{Name: "upstream_rate", Limit: 1, Window: time.Minute, Scope: "upstream:" + tenant}
	window := limiter.Rule{Name: "burst", Limit: 1, Window: time.Hour, Algorithm: limiter.AlgoSlidingWindow}
	quota := limiter.Rule{Name: "monthly", Limit: 1, Algorithm: limiter.AlgoFixed, Period: limiter.PeriodMonth}
	fillShared(t, e, tenant, shared)
	d := decide(t, e.Store, tenant, window, quota, shared)
	if d.Allowed || !d.Rules[2].Denied() || d.Rules[0].Remaining != 1 || d.Rules[1].Remaining != 1 {
		t.Fatalf("refused by the shared limit: %+v; want denied by it, 1 left in each own rule", d.States())
	}
	if d.Rules[0].Reset != 0 {
		t.Fatalf("sliding window of a refused request: %+v; want no reset (nothing counted)", d.Rules[0])
	}
	if d := decide(t, e.Store, tenant, window, quota); !d.Allowed || d.Rules[0].Remaining != 0 || d.Rules[1].Remaining != 0 {
		t.Fatalf("the tenant's own rules after the refusal: %+v; want admitted, 0 left", d.States())
	}
	if d := decide(t, e.Store, tenant, window, quota); d.Allowed || !d.Rules[0].Denied() || !d.Rules[1].Denied() {
		t.Fatalf("the next: %+v; want denied by both (1 counted, not 0)", d.States())
	}
}
