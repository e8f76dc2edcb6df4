package limiter_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
)

// TestAFailedReleaseIsSentAgain: a release the primary refuses
// (NOREPLICAS: min-replicas-to-write not met) is sent again, and lands
// once the primary takes writes; it no longer holds the lease for its
// whole window, refusing a tenant with nothing in flight.
func TestAFailedReleaseIsSentAgain(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
	lease := limiter.Rule{Name: "concurrency", Limit: 1, Window: time.Minute, Lease: true}
	d := decideOK(t, s, "acme", lease)
	if !d.Allowed {
		t.Fatal("first request refused")
	}
	configSet(t, srv, "min-replicas-to-write", "1") // the replica is gone: writes refused
	s.Release("acme", lease, d.Seq)                 // the request ends
	time.Sleep(time.Second)                         // the release is sent, and refused
	configSet(t, srv, "min-replicas-to-write", "0") // the replica is back

	key := limiter.LeaseKey(prefix, "acme", "concurrency")
	c := srv.Client(t)
	testkit.Eventually(t, 5*time.Second, func() error {
		if n, err := c.ZCard(context.Background(), key).Result(); err != nil || n != 0 {
			return fmt.Errorf("lease set %s: %d held, %v; want 0: the release was not sent again", key, n, err)
		}
		return nil
	})
	if d := decideOK(t, s, "acme", lease); !d.Allowed {
		t.Fatalf("a request with nothing in flight: %+v; want admitted", d.States())
	}
}
