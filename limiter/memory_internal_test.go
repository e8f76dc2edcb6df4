package limiter

import (
	"context"
	"testing"
	"time"
)

// TestMemoryLeaseLogHoldsOnlyLeasesInFlight: a lease given back leaves
// its log at once, so a concurrency limit's log holds at most its limit,
// however many requests its window has seen; a route's (shared) limit
// too.
func TestMemoryLeaseLogHoldsOnlyLeasesInFlight(t *testing.T) {
	for _, scope := range []string{"", "route:r"} {
		s := NewMemoryStore(nil)
		lease := Rule{Name: "concurrency", Limit: 2, Window: time.Minute, Lease: true, Scope: scope}
		req := Request{Tenant: "t", Rules: []Rule{lease}}
		for i := range 50000 {
			d, _ := s.Decide(context.Background(), req)
			if !d.Allowed {
				t.Fatalf("scope %q: request %d refused with nothing in flight", scope, i)
			}
			s.Release("t", lease, d.Seq)
		}
		owner := s.shards[tenantHash("t")%memoryShards].tenants["t"]
		if scope != "" {
			owner = s.shared[scope]
		}
		if lg := owner.rules[memKeyOf(lease)]; lg.n() > int(lease.Limit) || len(lg.entries) > 2*int(lease.Limit) {
			t.Fatalf("scope %q: after 50000 requests, never more than 1 in flight, the lease log holds %d entries (%d kept); want at most the limit, %d",
				scope, lg.n(), len(lg.entries), lease.Limit)
		}
	}
}

// TestMemoryReleaseTakesOutTheLeaseOfItsSeq: leases given back out of
// order leave the others counted, oldest first.
func TestMemoryReleaseTakesOutTheLeaseOfItsSeq(t *testing.T) {
	s := NewMemoryStore(nil)
	lease := Rule{Name: "concurrency", Limit: 4, Window: time.Minute, Lease: true}
	req := Request{Tenant: "t", Rules: []Rule{lease}}
	var seqs []uint64
	for range 4 {
		d, _ := s.Decide(context.Background(), req)
		seqs = append(seqs, d.Seq)
	}
	s.Release("t", lease, seqs[2])
	s.Release("t", lease, seqs[0])
	s.Release("t", lease, seqs[0]) // twice: nothing more
	lg := s.shards[tenantHash("t")%memoryShards].tenants["t"].rules[memKeyOf(lease)]
	if got := lg.live(); len(got) != 2 || got[0].seq != seqs[1] || got[1].seq != seqs[3] || lg.used != 2 {
		t.Fatalf("after releasing the 1st and 3rd: %+v, used %d; want the 2nd and 4th, used 2", got, lg.used)
	}
}
