package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// usager is a store that reads what rules have used: every store has it
// for the admin API.
type usager interface {
	Usage(ctx context.Context, tenant string, rules []limiter.Rule) ([]limiter.RuleUsage, error)
}

// recorded waits, up to a deadline, until the store shows want used in
// each of rules. A store may record after it answers (replica
// consistency) or read a replica, so what it shows may lag; a count past
// want never comes back down within the window, so it fails.
func recorded(t *testing.T, s limiter.Store, tenant string, rules []limiter.Rule, want ...int64) {
	t.Helper()
	u, ok := s.(usager)
	if !ok {
		return
	}
	var last string
	deadline := time.Now().Add(5 * time.Second)
	for {
		us, err := u.Usage(context.Background(), tenant, rules)
		last = fmt.Sprint(err)
		if err == nil {
			got := make([]int64, len(us))
			for i := range us {
				got[i] = us[i].Used
			}
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			last = fmt.Sprint(got)
		}
		if time.Now().After(deadline) {
			t.Fatalf("used in %v: got %s; want %v", rules, last, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shadowNeverDenies: a shadow rule is decided beside the enforced ones,
// says when it would have denied, and denies nothing; it records a request
// only when the request is admitted and it had room.
func shadowNeverDenies(t *testing.T, e Env, tenant string) {
	enforced := limiter.Rule{Name: "enforced", Limit: 100, Window: time.Minute}
	shadow := limiter.Rule{Name: "trial", Limit: 2, Window: time.Minute, Mode: limiter.RuleShadow}
	for i := int64(1); i <= 5; i++ {
		d := decide(t, e.Store, tenant, enforced, shadow)
		st := d.Rules[1]
		if !d.Allowed || d.RetryAfter() != 0 || d.Rules[0].Denied() {
			t.Fatalf("request %d: got allowed=%v retry-after=%v; want allowed, none (a shadow rule denies nothing)", i, d.Allowed, d.RetryAfter())
		}
		if !st.Shadow || d.Rules[0].Shadow {
			t.Fatalf("request %d: got shadow flags %v %v; want false true", i, d.Rules[0].Shadow, st.Shadow)
		}
		wantDenied := i > 2
		if st.Denied() != wantDenied || d.ShadowDenied() != wantDenied {
			t.Fatalf("request %d: shadow denied=%v (decision %v); want %v", i, st.Denied(), d.ShadowDenied(), wantDenied)
		}
		if wantRemaining := max(2-i, 0); st.Remaining != wantRemaining || d.Rules[0].Remaining != 100-i {
			t.Fatalf("request %d: remaining %d (shadow %d); want %d (%d)", i, d.Rules[0].Remaining, st.Remaining, 100-i, wantRemaining)
		}
		if wantDenied && (st.RetryAfter <= 0 || st.RetryAfter > time.Minute) {
			t.Fatalf("request %d: shadow retry-after %v; want in (0, 1m]", i, st.RetryAfter)
		}
	}
	recorded(t, e.Store, tenant, []limiter.Rule{enforced, shadow}, 5, 2)
}

// shadowNotRecordedOnDenial: a request an enforced rule denies is recorded
// in no shadow rule either, and a shadow rule never shares its count with
// an enforced rule of the same name.
func shadowNotRecordedOnDenial(t *testing.T, e Env, tenant string) {
	enforced := limiter.Rule{Name: "tight", Limit: 1, Window: time.Minute}
	shadow := limiter.Rule{Name: "wide", Limit: 100, Window: time.Minute, Mode: limiter.RuleShadow}
	for i := int64(1); i <= 3; i++ {
		d := decide(t, e.Store, tenant, enforced, shadow)
		if d.Allowed != (i == 1) || d.ShadowDenied() {
			t.Fatalf("request %d: got allowed=%v shadow-denied=%v; want %v false", i, d.Allowed, d.ShadowDenied(), i == 1)
		}
		if d.Rules[1].Remaining != 99 {
			t.Fatalf("request %d: shadow remaining %d; want 99 (only the admitted request counted)", i, d.Rules[1].Remaining)
		}
	}
	recorded(t, e.Store, tenant, []limiter.Rule{enforced, shadow}, 1, 1)
	// "wide" enforced is another count than "wide" in shadow.
	same := limiter.Rule{Name: "wide", Limit: 1, Window: time.Minute}
	if d := decide(t, e.Store, tenant, same); !d.Allowed || d.Rules[0].Remaining != 0 {
		t.Fatalf("enforced rule named as the shadow one: got allowed=%v remaining=%d; want true 0 (counts of their own)", d.Allowed, d.Rules[0].Remaining)
	}
}
