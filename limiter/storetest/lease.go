package storetest

import (
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// Releaser is a store whose concurrency limits (Lease rules) give leases
// back, and renew them: both limiter stores.
type Releaser interface {
	Release(tenant string, r limiter.Rule, seq uint64)
	Renew(tenant string, r limiter.Rule, seq uint64)
}

// releaseWait bounds how long a release may take to land (the Redis
// store writes releases in the background).
const releaseWait = 3 * time.Second

func releaser(t *testing.T, e Env) Releaser {
	r, ok := e.Store.(Releaser)
	if !ok {
		t.Fatalf("%T gives no leases back (no Release)", e.Store)
	}
	return r
}

// admitWhenFree decides until the request is admitted, for a lease given
// back in the background; it fails after releaseWait.
func admitWhenFree(t *testing.T, e Env, tenant string, rules ...limiter.Rule) limiter.Decision {
	t.Helper()
	deadline := time.Now().Add(releaseWait)
	for {
		d := decide(t, e.Store, tenant, rules...)
		if d.Allowed {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("still denied %s after a release: %+v", releaseWait, d.States())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leaseCapsInFlight: a concurrency limit of 3 admits 3, denies the 4th
// with Retry-After RetryLease, and admits again once one is released.
func leaseCapsInFlight(t *testing.T, e Env, tenant string) {
	lease := limiter.Rule{Name: "concurrency", Limit: 3, Window: time.Minute, Lease: true}
	var seqs []uint64
	for i := range 3 {
		d := decide(t, e.Store, tenant, lease)
		if !d.Allowed || d.Rules[0].Remaining != int64(2-i) || !d.Rules[0].Lease {
			t.Fatalf("lease %d: %+v; want admitted, %d left, marked Lease", i+1, d, 2-i)
		}
		seqs = append(seqs, d.Seq)
	}
	if seqs[0] == seqs[1] || seqs[1] == seqs[2] {
		t.Fatalf("decisions share a Seq: %v", seqs)
	}
	d := decide(t, e.Store, tenant, lease)
	if d.Allowed || d.Rules[0].RetryAfter != limiter.RetryLease {
		t.Fatalf("4th in flight: allowed=%v retry=%v; want denied, retry %v", d.Allowed, d.Rules[0].RetryAfter, limiter.RetryLease)
	}
	releaser(t, e).Release(tenant, lease, seqs[1])
	admitWhenFree(t, e, tenant, lease)
	if d := decide(t, e.Store, tenant, lease); d.Allowed {
		t.Fatal("a 4th lease after one release and one new: admitted; want denied")
	}
}

// leaseExpires: a lease never given back (its gateway died) leaves the
// concurrency limit once its window has passed.
func leaseExpires(t *testing.T, e Env, tenant string) {
	lease := limiter.Rule{Name: "concurrency", Limit: 2, Window: e.Window, Lease: true}
	for i := range 2 {
		if d := decide(t, e.Store, tenant, lease); !d.Allowed {
			t.Fatalf("lease %d: denied", i+1)
		}
	}
	if d := decide(t, e.Store, tenant, lease); d.Allowed {
		t.Fatal("3rd lease: admitted; want denied")
	}
	e.Wait(e.Window + e.Window/4)
	for i := range 2 {
		if d := decide(t, e.Store, tenant, lease); !d.Allowed {
			t.Fatalf("after the leases expired, lease %d: denied", i+1)
		}
	}
}

// leaseRenewedOutlivesItsWindow: a lease renewed within its window holds
// its slot past the window it was taken in, and gives it back when
// released. (A lease is renewed only until it is given back: a renewal
// cannot tell a lease given back from one lost.)
func leaseRenewedOutlivesItsWindow(t *testing.T, e Env, tenant string) {
	lease := limiter.Rule{Name: "concurrency", Limit: 1, Window: e.Window, Lease: true}
	rel := releaser(t, e)
	first := decide(t, e.Store, tenant, lease)
	if !first.Allowed {
		t.Fatal("first lease: denied")
	}
	e.Wait(e.Window * 2 / 3)
	rel.Renew(tenant, lease, first.Seq)
	e.Wait(e.Window * 2 / 3) // past the window it was taken in, within the renewed one
	if d := decide(t, e.Store, tenant, lease); d.Allowed {
		t.Fatal("a second lease while the renewed first is held: admitted; want denied")
	}
	rel.Release(tenant, lease, first.Seq)
	admitWhenFree(t, e, tenant, lease)
}

// leaseRenewalTakesBackALostLease: a renewal of a lease the store no
// longer holds (it left its window unrenewed, as one Redis lost in a
// restart or an eviction) takes it again when the limit has room, so that
// its request counts again; when the limit is full it takes nothing, and
// a later renewal with room does.
func leaseRenewalTakesBackALostLease(t *testing.T, e Env, tenant string) {
	lease := limiter.Rule{Name: "concurrency", Limit: 2, Window: e.Window, Lease: true}
	rel := releaser(t, e)
	first := decide(t, e.Store, tenant, lease)
	if !first.Allowed {
		t.Fatal("first lease: denied")
	}
	e.Wait(e.Window + e.Window/4) // lost
	rel.Renew(tenant, lease, first.Seq)
	if d := decide(t, e.Store, tenant, lease); !d.Allowed || d.Rules[0].Remaining != 0 {
		t.Fatalf("a second lease beside the first taken back: %+v; want admitted, 0 left", d.States())
	}
	if d := decide(t, e.Store, tenant, lease); d.Allowed {
		t.Fatal("a third lease beside the first taken back and the second: admitted; want denied (limit 2)")
	}

	// The limit full when the lost lease is renewed: nothing is taken.
	other := tenant + "-full"
	lost := decide(t, e.Store, other, lease)
	if !lost.Allowed {
		t.Fatal("a lease of the other tenant: denied")
	}
	e.Wait(e.Window + e.Window/4) // lost
	var held []uint64
	for i := range 2 {
		d := decide(t, e.Store, other, lease)
		if !d.Allowed {
			t.Fatalf("lease %d after the first was lost: denied; want admitted", i+1)
		}
		held = append(held, d.Seq)
	}
	rel.Renew(other, lease, lost.Seq)
	recorded(t, e.Store, other, []limiter.Rule{lease}, 2)
	// Room again: the next renewal takes it.
	rel.Release(other, lease, held[0])
	recorded(t, e.Store, other, []limiter.Rule{lease}, 1)
	rel.Renew(other, lease, lost.Seq)
	if d := decide(t, e.Store, other, lease); d.Allowed {
		t.Fatal("a lease beside the one held and the lost one taken back: admitted; want denied (limit 2)")
	}
}

// leaseAllOrNothing: a request the concurrency limit refuses is not
// counted by the rate rule, and one the rate rule refuses takes no lease.
func leaseAllOrNothing(t *testing.T, e Env, tenant string) {
	rate := limiter.Rule{Name: "rate", Limit: 2, Window: time.Minute}
	lease := limiter.Rule{Name: "concurrency", Limit: 1, Window: time.Minute, Lease: true}
	rel := releaser(t, e)
	first := decide(t, e.Store, tenant, rate, lease)
	if !first.Allowed {
		t.Fatalf("first: %+v; want admitted", first.States())
	}
	d := decide(t, e.Store, tenant, rate, lease)
	if d.Allowed || !d.Rules[1].Denied() || d.Rules[0].Denied() {
		t.Fatalf("second, in flight with the first: %+v; want denied by the lease alone", d.States())
	}
	rel.Release(tenant, lease, first.Seq)
	second := admitWhenFree(t, e, tenant, rate, lease)
	if second.Rules[0].Remaining != 0 {
		t.Fatalf("rate rule after two admissions: %d left; want 0 (the refused request was counted)", second.Rules[0].Remaining)
	}
	rel.Release(tenant, lease, second.Seq)
	// The rate rule is full now: it refuses, and the lease stays free.
	deadline := time.Now().Add(releaseWait)
	for {
		d := decide(t, e.Store, tenant, rate, lease)
		if d.Allowed || !d.Rules[0].Denied() {
			t.Fatalf("third: %+v; want denied by the rate rule", d.States())
		}
		if !d.Rules[1].Denied() || time.Now().After(deadline) {
			break // the second's lease is back
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := decide(t, e.Store, tenant, lease); !d.Allowed {
		t.Fatalf("the lease alone after a rate refusal: %+v; want admitted (a refused request takes no lease)", d.States())
	}
}
