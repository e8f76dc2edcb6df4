package tenants_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// TestConcurrencyIsALeaseRule: a plan's concurrency becomes one rule of
// each of its tenants, and of their routes: a Lease rule named
// ConcurrencyRule whose window is tenants.lease_ttl (60s when unset).
func TestConcurrencyIsALeaseRule(t *testing.T) {
	ps := map[string]tenants.Plan{"crowd": {Concurrency: 5, Limits: []limiter.Rule{{Name: "per_second", Limit: 10, Window: time.Second}}}}
	specs := []tenants.Spec{{ID: "a", Plan: "crowd", Keys: []string{"k"},
		Routes: []tenants.RouteSpec{{PathPrefix: "/x", Limits: []limiter.Rule{{Name: "x", Limit: 1, Window: time.Minute}}}}}}
	for _, tc := range []struct {
		ttl, want time.Duration
	}{{0, time.Minute}, {90 * time.Second, 90 * time.Second}} {
		o := opts()
		o.LeaseTTL = tc.ttl
		s, err := tenants.Build(o, ps, specs, anyUpstream)
		if err != nil {
			t.Fatal(err)
		}
		tn, _ := s.Resolve([]byte("k"))
		for _, path := range []string{"/", "/x"} {
			var leases []limiter.Rule
			for _, r := range tn.Rules([]byte("GET"), []byte(path)) {
				if r.Lease {
					leases = append(leases, r)
				}
			}
			want := limiter.Rule{Name: tenants.ConcurrencyRule, Limit: 5, Window: tc.want, Lease: true}
			if len(leases) != 1 || leases[0] != want {
				t.Fatalf("lease_ttl %v, %s: Lease rules %+v; want one, %+v", tc.ttl, path, leases, want)
			}
		}
	}
	if plain := build(t, opts(), tenants.Spec{ID: "b", Plan: "free", Keys: []string{"k2"}}); limiter.HasLease(mustResolve(t, plain, "k2").Rules(nil, nil)) {
		t.Fatal("a plan without concurrency: its tenant has a Lease rule")
	}
}

func mustResolve(t *testing.T, s *tenants.Snapshot, key string) *tenants.Tenant {
	t.Helper()
	tn, res := s.Resolve([]byte(key))
	if res != tenants.Resolved {
		t.Fatalf("key %q: %v", key, res)
	}
	return tn
}

// TestConcurrencyErrors: a bad concurrency names its key.
func TestConcurrencyErrors(t *testing.T) {
	full := make([]limiter.Rule, limiter.MaxTenantRules)
	for i := range full {
		full[i] = limiter.Rule{Name: "r" + string(rune('a'+i)), Limit: 1, Window: time.Second}
	}
	for _, tc := range []struct {
		plan tenants.Plan
		want string
	}{
		{tenants.Plan{Concurrency: -1}, "plans.p.concurrency: got -1; want 0 (no cap) to 100000"},
		{tenants.Plan{Concurrency: 100_001}, "plans.p.concurrency: got 100001"},
		{tenants.Plan{Concurrency: 2, Limits: full}, fmt.Sprintf("plans.p.concurrency: the plan has %d rules already", limiter.MaxTenantRules)},
		{tenants.Plan{Concurrency: 2, Limits: []limiter.Rule{{Name: tenants.ConcurrencyRule, Limit: 5, Window: time.Second}}},
			`plans.p.limits: a rule named "concurrency", and the plan's concurrency limit is counted under that name`},
	} {
		_, err := tenants.Build(opts(), map[string]tenants.Plan{"p": tc.plan}, nil, anyUpstream)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("plan %+v: error %v; want %q", tc.plan, err, tc.want)
		}
		// The registry API checks a plan as the file's are checked.
		want := strings.TrimPrefix(tc.want, "plans.p.")
		if err := tenants.CheckPlan("p", tc.plan); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckPlan(%+v): error %v; want %q", tc.plan, err, want)
		}
	}

	// A tenant's own rule of that name, on a plan with a concurrency limit.
	crowd := map[string]tenants.Plan{"crowd": {Concurrency: 2}, "free": {}}
	own := []limiter.Rule{{Name: tenants.ConcurrencyRule, Limit: 5, Window: time.Second}}
	_, err := tenants.Build(opts(), crowd, []tenants.Spec{{ID: "a", Plan: "crowd", Keys: []string{"k"}, Limits: own}}, anyUpstream)
	if want := `tenant_list[0].limits: a rule named "concurrency", and plan "crowd"'s concurrency limit`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("tenant rule named concurrency: error %v; want %q", err, want)
	}
	if _, err := tenants.Build(opts(), crowd, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Limits: own}}, anyUpstream); err != nil {
		t.Errorf("a rule named concurrency on a plan without a concurrency limit: %v", err)
	}
}
