package limiter

import (
	"context"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// renewTimeout bounds one renewal on the primary.
const renewTimeout = time.Second

var (
	leasesRenewed = metrics.NewCounter(`l1gw_lease_renewals_total{result="renewed"}`)
	leasesGone    = metrics.NewCounter(`l1gw_lease_renewals_total{result="gone"}`)
	renewsFailed  = metrics.NewCounter(`l1gw_lease_renewals_total{result="failed"}`)
)

// Renew keeps the lease that decision seq took in tenant's Lease rule r in
// its window, dated from now: a request that lasts longer than the window
// (a tunnel) renews it while it is open, every third of the window. It
// waits for the primary, at most a second.
func (s *RedisStore) Renew(tenant string, r Rule, seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), renewTimeout)
	defer cancel()
	key := LeaseKey(s.prefix, ruleTag(tenant, r), r.Name)
	n, err := renewScript.Run(ctx, s.clients.Primary, []string{key}, s.memberOf(seq)+":1", r.Window.Microseconds()).Int()
	switch {
	case err != nil:
		renewsFailed.Inc()
	case n == 0:
		leasesGone.Inc()
	default:
		leasesRenewed.Inc()
	}
}
