package limiter

import (
	"context"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// renewTimeout bounds one renewal on the primary.
const renewTimeout = time.Second

var (
	leasesRenewed  = metrics.NewCounter(`l1gw_lease_renewals_total{result="renewed"}`)
	leasesRestored = metrics.NewCounter(`l1gw_lease_renewals_total{result="restored"}`)
	leasesGone     = metrics.NewCounter(`l1gw_lease_renewals_total{result="gone"}`)
	renewsFailed   = metrics.NewCounter(`l1gw_lease_renewals_total{result="failed"}`)
)

// Renew keeps the lease that decision seq took in tenant's Lease rule r in
// its window, dated from now: a request that lasts longer than the window
// (a tunnel) renews it while it is open, every third of the window, and
// until it gives it back, never after. A lease Redis no longer holds (lost
// in a restart, evicted, or out of its window) is taken again if r has
// room, so that the request counts again; if not, the next renewal tries
// again. It waits for the primary, at most a second.
func (s *RedisStore) Renew(tenant string, r Rule, seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), renewTimeout)
	defer cancel()
	key := LeaseKey(s.prefix, ruleTag(tenant, r), r.Name)
	n, err := renewScript.Run(ctx, s.clients.Primary, []string{key}, s.memberOf(seq)+":1", r.Window.Microseconds(), r.Limit).Int()
	switch {
	case err != nil:
		renewsFailed.Inc()
	case n == 0:
		leasesGone.Inc()
	case n == 2:
		leasesRestored.Inc()
	default:
		leasesRenewed.Inc()
	}
}
