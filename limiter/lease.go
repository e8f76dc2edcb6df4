package limiter

import (
	"context"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
)

// A concurrency limit is a Lease rule: a sliding log, decided by the same
// script as every other rule, whose window is the lease's longest life.
// Its set holds one member per request in flight; Release takes the
// member out when the response ends. A gateway that dies never releases
// its leases: they leave the window, as any record does.

// releaseQueue bounds the leases waiting to be given back. A release that
// finds it full is dropped and counted: its lease expires instead.
const releaseQueue = 8192

// releaseBatch is the most releases one pipeline carries.
const releaseBatch = 256

// releaseTimeout bounds one batch of releases on the primary.
const releaseTimeout = time.Second

// release is one lease to give back: the Seq of the decision that took it
// in the Lease rule of that name counted under tag (the tenant, or the
// rule's scope: ruleTag).
type release struct {
	tag  string
	rule string
	seq  uint64
}

var (
	leasesReleased = metrics.NewCounter(`l1gw_lease_releases_total{result="released"}`)
	leasesExpired  = metrics.NewCounter(`l1gw_lease_releases_total{result="expired"}`)
	leasesDropped  = metrics.NewCounter(`l1gw_lease_releases_total{result="dropped"}`)
	leasesFailed   = metrics.NewCounter(`l1gw_lease_releases_total{result="failed"}`)
)

// HasLease reports whether rules hold a Lease rule: a request under a
// concurrency limit.
func HasLease(rules []Rule) bool {
	for i := range rules {
		if rules[i].Lease {
			return true
		}
	}
	return false
}

// Release gives back the lease that decision seq took in tenant's Lease
// rule r. It never waits: the release is queued and written to the
// primary in a pipeline with others (Run writes them).
func (s *RedisStore) Release(tenant string, r Rule, seq uint64) {
	select {
	case s.releases <- release{tag: ruleTag(tenant, r), rule: r.Name, seq: seq}:
	default:
		leasesDropped.Inc()
	}
}

// releaseLate gives back the leases of a decision that its script
// admitted after the watchdog gave up on it: the caller went on without
// them (a local lease, or a refusal), so nothing else would, and they
// held the tenant's slots until they left the window. A decision given
// up whose reply never comes (its connection closed) still leaves them
// to the window.
func (s *RedisStore) releaseLate(o *op) {
	for _, r := range o.req.Rules {
		if r.Lease {
			s.Release(o.req.Tenant, r, o.seq)
		}
	}
}

// runReleases writes queued releases until ctx ends, then what is queued.
func (s *RedisStore) runReleases(ctx context.Context) {
	drain(ctx, s.releases, releaseBatch, s.writeReleases)
}

// writeReleases sends a batch as one pipeline of ZREM on the primary (in
// Cluster, go-redis splits it by slot).
func (s *RedisStore) writeReleases(batch []release) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	p := s.clients.Primary.Pipeline()
	cmds := make([]*redis.IntCmd, len(batch))
	for i, rel := range batch {
		cmds[i] = p.ZRem(ctx, LeaseKey(s.prefix, rel.tag, rel.rule), s.memberOf(rel.seq)+":1")
	}
	p.Exec(ctx) //nolint:errcheck // each command's error is read below
	for _, c := range cmds {
		switch n, err := c.Result(); {
		case err != nil:
			leasesFailed.Inc()
		case n == 0:
			leasesExpired.Inc()
		default:
			leasesReleased.Inc()
		}
	}
}

// memberOf is the member base of decision seq: the instance and the
// sequence number, as a string.
func (s *RedisStore) memberOf(seq uint64) string {
	var buf [40]byte
	b := append(buf[:0], s.instance...)
	b = append(b, ':')
	return string(strconv.AppendUint(b, seq, 36))
}

// leaseDenied reports whether a Lease rule denied d.
func leaseDenied(rules []Rule, d *Decision) bool {
	for i := range rules {
		if rules[i].Lease && d.Rules[i].Denied() {
			return true
		}
	}
	return false
}

// leaseOnly reports whether only Lease rules denied d. A replica shows a
// lease given back on the primary a moment ago as still held, so its word
// on a concurrency limit is not the truth.
func leaseOnly(rules []Rule, d *Decision) bool {
	for i := range rules {
		if !rules[i].Lease && !rules[i].Shadow() && d.Rules[i].Denied() {
			return false
		}
	}
	return true
}
