// Package storetest is the behavioural contract every limiter.Store keeps.
// The memory store and the Redis store run the same suite, so the embedded
// default and production never disagree.
package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// Env is a store under test and a way to let time pass for it.
type Env struct {
	// Store is the store under test.
	Store limiter.Store
	// Wait lets d pass on the store's clock: advancing a fake clock, or
	// sleeping for a store that reads a real one.
	Wait func(d time.Duration)
	// Window is the window the suite uses for time-based cases; real-clock
	// stores want it short. Default 1s.
	Window time.Duration
	// Now is the clock the store counts sliding windows by, the one Wait
	// moves. Default time.Now.
	Now func() time.Time
	// Calendar is the clock that places fixed rules in their calendar
	// periods: a fake clock, or a test-only offset on a real one, so a
	// month passes at once. nil: the fixed-rule cases are skipped.
	Calendar Clock
}

// Clock is a clock a test moves.
type Clock interface {
	// Now is the clock's time.
	Now() time.Time
	// Advance moves the clock d ahead.
	Advance(d time.Duration)
}

// Run runs the contract against the stores newEnv returns; each case gets a
// fresh Env and its own tenant IDs.
func Run(t *testing.T, newEnv func(t *testing.T) Env) {
	cases := []struct {
		name string
		fn   func(t *testing.T, e Env, tenant string)
	}{
		{"AdmitsUpToLimitThenDenies", admitsUpToLimit},
		{"AllOrNothingAcrossRules", allOrNothing},
		{"DeniedIsNeverRecorded", deniedNotRecorded},
		{"TenantsAreIsolated", tenantsIsolated},
		{"CostIsConsumed", costConsumed},
		{"WindowSlides", windowSlides},
		{"ConcurrentBurstAdmitsExactlyLimit", concurrentBurst},
		{"TooManyRulesIsAnError", tooManyRules},
		{"ShadowRuleNeverDenies", shadowNeverDenies},
		{"ShadowRuleNotRecordedOnDenial", shadowNotRecordedOnDenial},
		{"LeaseCapsInFlight", leaseCapsInFlight},
		{"LeaseExpires", leaseExpires},
		{"LeaseRenewedOutlivesItsWindow", leaseRenewedOutlivesItsWindow},
		{"LeaseRenewalTakesBackALostLease", leaseRenewalTakesBackALostLease},
		{"LeaseAllOrNothing", leaseAllOrNothing},
		{"SharedCountsAcrossTenants", sharedCountsAcrossTenants},
		{"SharedLeaseCapsEveryTenant", sharedLeaseCapsEveryTenant},
		{"SharedRefusalRecordsNothing", sharedRefusalRecordsNothing},
		{"SharedRefusalRecordsNoCount", sharedRefusalRecordsNoCount},
	}
	cases = append(cases, algorithmCases...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if e.Window == 0 {
				e.Window = time.Second
			}
			if e.Now == nil {
				e.Now = time.Now
			}
			tc.fn(t, e, tenantFor(t))
		})
	}
}

var seq atomic.Int64

// tenantFor is a tenant ID unique to the test, safe for any store's keys.
func tenantFor(t *testing.T) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, t.Name())
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano()%1e6, seq.Add(1))
}

func decide(t *testing.T, s limiter.Store, tenant string, rules ...limiter.Rule) limiter.Decision {
	t.Helper()
	d, err := s.Decide(context.Background(), limiter.Request{
		Tenant: tenant, Rules: rules,
	})
	if err != nil {
		t.Fatalf("Decide(%s, %v): %v", tenant, rules, err)
	}
	if d.N != len(rules) {
		t.Fatalf("Decide: got %d rule states; want %d", d.N, len(rules))
	}
	return d
}

func admitsUpToLimit(t *testing.T, e Env, tenant string) {
	r := limiter.Rule{Name: "r", Limit: 3, Window: time.Minute}
	for i := int64(1); i <= 3; i++ {
		d := decide(t, e.Store, tenant, r)
		st := d.Rules[0]
		if !d.Allowed || st.Remaining != 3-i || st.Limit != 3 {
			t.Fatalf("request %d: got allowed=%v remaining=%d limit=%d; want true %d 3", i, d.Allowed, st.Remaining, st.Limit, 3-i)
		}
		if st.Reset <= 0 || st.Reset > time.Minute || st.Denied() {
			t.Fatalf("request %d: got reset=%v retryAfter=%v; want 0<reset<=1m, no retry", i, st.Reset, st.RetryAfter)
		}
	}
	d := decide(t, e.Store, tenant, r)
	st := d.Rules[0]
	if d.Allowed || st.Remaining != 0 {
		t.Fatalf("4th request: got allowed=%v remaining=%d; want false 0", d.Allowed, st.Remaining)
	}
	if st.RetryAfter <= 0 || st.RetryAfter > time.Minute || d.RetryAfter() != st.RetryAfter {
		t.Fatalf("4th request: got retryAfter=%v (decision %v); want in (0, 1m]", st.RetryAfter, d.RetryAfter())
	}
}

func allOrNothing(t *testing.T, e Env, tenant string) {
	wide := limiter.Rule{Name: "wide", Limit: 5, Window: time.Minute}
	tight := limiter.Rule{Name: "tight", Limit: 2, Window: time.Minute}
	for i := 0; i < 2; i++ {
		if d := decide(t, e.Store, tenant, wide, tight); !d.Allowed {
			t.Fatalf("request %d: denied; want allowed", i+1)
		}
	}
	d := decide(t, e.Store, tenant, wide, tight)
	if d.Allowed {
		t.Fatal("3rd request: allowed; want denied by tight")
	}
	if d.Rules[0].Denied() || !d.Rules[1].Denied() {
		t.Fatalf("3rd request: got wide denied=%v tight denied=%v; want false true", d.Rules[0].Denied(), d.Rules[1].Denied())
	}
	if d.Rules[0].Remaining != 3 {
		t.Fatalf("3rd request: wide remaining %d; want 3 (denied request not recorded)", d.Rules[0].Remaining)
	}
	// The wide rule alone still has exactly 3 left: the denied request
	// above was recorded nowhere.
	for i := 0; i < 3; i++ {
		if d := decide(t, e.Store, tenant, wide); !d.Allowed {
			t.Fatalf("wide-only request %d: denied; want allowed", i+1)
		}
	}
	if d := decide(t, e.Store, tenant, wide); d.Allowed {
		t.Fatal("wide-only request 4: allowed; want denied (limit 5 reached)")
	}
}

func deniedNotRecorded(t *testing.T, e Env, tenant string) {
	r := limiter.Rule{Name: "r", Limit: 2, Window: e.Window}
	decide(t, e.Store, tenant, r)
	decide(t, e.Store, tenant, r)
	for i := 0; i < 20; i++ {
		if d := decide(t, e.Store, tenant, r); d.Allowed {
			t.Fatalf("over-limit request %d: allowed", i)
		}
	}
	e.Wait(e.Window + e.Window/5)
	for i := 0; i < 2; i++ {
		if d := decide(t, e.Store, tenant, r); !d.Allowed {
			t.Fatalf("after the window, request %d: denied; want allowed (denials must not extend the window)", i+1)
		}
	}
}

func tenantsIsolated(t *testing.T, e Env, tenant string) {
	r := limiter.Rule{Name: "r", Limit: 1, Window: time.Minute}
	decide(t, e.Store, tenant, r)
	if d := decide(t, e.Store, tenant, r); d.Allowed {
		t.Fatal("same tenant, 2nd request: allowed; want denied")
	}
	if d := decide(t, e.Store, tenant+"-other", r); !d.Allowed {
		t.Fatal("other tenant, 1st request: denied; want allowed")
	}
}

func costConsumed(t *testing.T, e Env, tenant string) {
	r := limiter.Rule{Name: "r", Limit: 10, Window: time.Minute, Cost: 4}
	for i, want := range []int64{6, 2} {
		d := decide(t, e.Store, tenant, r)
		if !d.Allowed || d.Rules[0].Remaining != want {
			t.Fatalf("request %d: got allowed=%v remaining=%d; want true %d", i+1, d.Allowed, d.Rules[0].Remaining, want)
		}
	}
	if d := decide(t, e.Store, tenant, r); d.Allowed || d.Rules[0].Remaining != 2 {
		t.Fatalf("3rd request: got allowed=%v remaining=%d; want false 2", d.Allowed, d.Rules[0].Remaining)
	}
	small := limiter.Rule{Name: "r", Limit: 10, Window: time.Minute, Cost: 2}
	if d := decide(t, e.Store, tenant, small); !d.Allowed || d.Rules[0].Remaining != 0 {
		t.Fatalf("cost-2 request: got allowed=%v remaining=%d; want true 0", d.Allowed, d.Rules[0].Remaining)
	}
	huge := limiter.Rule{Name: "huge", Limit: 3, Window: time.Minute, Cost: 5}
	if d := decide(t, e.Store, tenant, huge); d.Allowed || d.Rules[0].RetryAfter <= 0 {
		t.Fatalf("cost above limit: got allowed=%v retryAfter=%v; want denied with a retry-after", d.Allowed, d.Rules[0].RetryAfter)
	}
}

func windowSlides(t *testing.T, e Env, tenant string) {
	w := e.Window
	r := limiter.Rule{Name: "r", Limit: 2, Window: w}
	decide(t, e.Store, tenant, r) // at 0
	e.Wait(w / 2)
	second := time.Now()
	decide(t, e.Store, tenant, r) // at w/2
	d := decide(t, e.Store, tenant, r)
	if d.Allowed {
		t.Fatal("3rd request inside the window: allowed; want denied")
	}
	if ra := d.Rules[0].RetryAfter; ra > w/2+w/10 {
		t.Fatalf("retry-after %v; want about %v (the first request leaves the window then)", ra, w/2)
	}
	e.Wait(w/2 + w/5) // the first request has left, the second has not
	if d := decide(t, e.Store, tenant, r); !d.Allowed {
		t.Fatal("after the first request left the window: denied; want allowed")
	}
	// On a real clock a loaded machine can oversleep: past w after the
	// second request was sent (less a tenth for the last call), it may
	// have left the window.
	if late := time.Since(second); late >= w-w/10 {
		t.Logf("the check came %v after the second request, past the %v window; not judged", late, w)
		return
	}
	if d := decide(t, e.Store, tenant, r); d.Allowed {
		t.Fatal("the second request is still in the window: allowed; want denied")
	}
}

func concurrentBurst(t *testing.T, e Env, tenant string) {
	r := limiter.Rule{Name: "r", Limit: 50, Window: time.Minute}
	if got := Burst(t, e.Store, limiter.Request{Tenant: tenant, Rules: []limiter.Rule{r}}, 8, 25); got != 50 {
		t.Fatalf("200 concurrent requests: %d allowed; want exactly 50", got)
	}
}

// Burst sends req goroutines×each times from goroutines goroutines at
// once and returns how many were allowed; a store error fails the test.
func Burst(t testing.TB, s limiter.Store, req limiter.Request, goroutines, each int) int64 {
	t.Helper()
	return BurstOf(t, s, func(int, int) limiter.Request { return req }, goroutines, each)
}

// BurstOf is Burst of the requests reqs gives: goroutine g's i-th sends
// reqs(g, i).
func BurstOf(t testing.TB, s limiter.Store, reqs func(g, i int) limiter.Request, goroutines, each int) int64 {
	t.Helper()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				d, err := s.Decide(context.Background(), reqs(g, i))
				if err != nil {
					t.Errorf("Decide: %v", err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return allowed.Load()
}

func tooManyRules(t *testing.T, e Env, tenant string) {
	rules := make([]limiter.Rule, limiter.MaxRules+1)
	for i := range rules {
		rules[i] = limiter.Rule{Name: fmt.Sprintf("r%d", i), Limit: 1, Window: time.Second}
	}
	_, err := e.Store.Decide(context.Background(), limiter.Request{Tenant: tenant, Rules: rules})
	if err == nil {
		t.Fatalf("Decide with %d rules: no error; want one", len(rules))
	}
}
