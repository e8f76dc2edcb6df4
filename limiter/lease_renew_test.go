package limiter_test

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/limiter"
)

// resultCount is the counter metric{result="result"} of the process, 0
// before it is first counted.
func resultCount(t *testing.T, metric, result string) int {
	t.Helper()
	var buf bytes.Buffer
	metrics.WritePrometheus(&buf, false)
	m := regexp.MustCompile(regexp.QuoteMeta(metric+`{result="`+result+`"} `) + `(\d+)`).FindSubmatch(buf.Bytes())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// renewals is l1gw_lease_renewals_total{result}.
func renewals(t *testing.T, result string) int {
	t.Helper()
	return resultCount(t, "l1gw_lease_renewals_total", result)
}

// TestARenewalTakesBackALeaseRedisLost: Redis loses its data (FLUSHALL,
// as a restart without persistence) while two requests hold both leases
// of a concurrency limit of 2. The first's renewal takes its lease back
// (restored); a newcomer takes the other slot; the second's renewal then
// finds the limit full and takes nothing (gone), so the set holds 2, not
// 3, and the next request is refused. A renewal renewed only a lease
// still there (ZADD XX): after the loss both requests went on uncounted
// for the rest of their lives. Not parallel: it reads the counters.
func TestARenewalTakesBackALeaseRedisLost(t *testing.T) {
	srv := redistest.Server(t)
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), false)
	lease := limiter.Rule{Name: "concurrency", Limit: 2, Window: time.Minute, Lease: true}
	a, b := decideOK(t, s, "acme", lease), decideOK(t, s, "acme", lease)
	if !a.Allowed || !b.Allowed {
		t.Fatal("the first two leases: denied")
	}
	c := srv.Client(t)
	ctx := context.Background()
	key := limiter.LeaseKey(prefix, "acme", "concurrency")
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	restored, gone, renewed := renewals(t, "restored"), renewals(t, "gone"), renewals(t, "renewed")

	s.Renew("acme", lease, a.Seq)
	if n := c.ZCard(ctx, key).Val(); n != 1 {
		t.Fatalf("after the first request's renewal: %d leases in %s; want 1, its own taken back", n, key)
	}
	if ttl := c.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("the set's TTL after the lease was taken back: %v; want up to the window", ttl)
	}
	if d := decideOK(t, s, "acme", lease); !d.Allowed || d.Rules[0].Remaining != 0 {
		t.Fatalf("a newcomer: %+v; want admitted, 0 left", d.States())
	}
	s.Renew("acme", lease, b.Seq)
	if n := c.ZCard(ctx, key).Val(); n != 2 {
		t.Fatalf("after the second request's renewal, the limit full: %d leases; want 2 (none taken over the limit)", n)
	}
	s.Renew("acme", lease, a.Seq)
	if d := decideOK(t, s, "acme", lease); d.Allowed {
		t.Fatal("a third in flight under concurrency 2: admitted; want denied")
	}
	for _, c := range []struct {
		result string
		from   int
		want   int
	}{{"restored", restored, 1}, {"gone", gone, 1}, {"renewed", renewed, 1}} {
		if got := renewals(t, c.result) - c.from; got != c.want {
			t.Errorf(`l1gw_lease_renewals_total{result=%q} grew by %d; want %d`, c.result, got, c.want)
		}
	}
}

// releases is l1gw_lease_releases_total{result}.
func releases(t *testing.T, result string) int {
	t.Helper()
	return resultCount(t, "l1gw_lease_releases_total", result)
}

// TestMemoryLeasesAreCounted: the memory store (alone, or a gateway's own
// while Redis is down) counts its renewals and releases as the Redis store
// does: a lease renewed while held, taken back when lost with room, gone
// when lost with the limit full; given back, or found expired. Not
// parallel: it reads the counters.
func TestMemoryLeasesAreCounted(t *testing.T) {
	clk := newFakeClock()
	s := limiter.NewMemoryStore(clk.Now)
	lease := limiter.Rule{Name: "concurrency", Limit: 1, Window: time.Minute, Lease: true}
	counts := func() [5]int {
		return [5]int{renewals(t, "renewed"), renewals(t, "restored"), renewals(t, "gone"),
			releases(t, "released"), releases(t, "expired")}
	}
	from := counts()
	a := decideOK(t, s, "acme", lease)
	s.Renew("acme", lease, a.Seq) // renewed
	clk.Advance(2 * time.Minute)  // lost
	s.Renew("acme", lease, a.Seq) // restored
	clk.Advance(2 * time.Minute)  // lost again
	b := decideOK(t, s, "acme", lease)
	if !b.Allowed {
		t.Fatal("a lease after the first was lost: denied")
	}
	s.Renew("acme", lease, a.Seq)   // gone: b holds the only slot
	s.Release("acme", lease, b.Seq) // released
	s.Release("acme", lease, a.Seq) // expired: never taken back
	got := counts()
	names := [5]string{"renewals renewed", "renewals restored", "renewals gone", "releases released", "releases expired"}
	for i := range names {
		if n := got[i] - from[i]; n != 1 {
			t.Errorf("%s grew by %d; want 1", names[i], n)
		}
	}
}
