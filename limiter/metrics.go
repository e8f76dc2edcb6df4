package limiter

import "github.com/VictoriaMetrics/metrics"

// The limiter's metrics. The decision batches' are per node (statsFor).
var (
	// redisErrors is l1gw_redis_errors_total by kind: failed calls to
	// Redis on the decision path (a batch that fails whole counts once).
	redisErrors = func() map[string]*metrics.Counter {
		m := make(map[string]*metrics.Counter, len(errorKinds))
		for _, k := range errorKinds {
			m[k] = metrics.NewCounter(`l1gw_redis_errors_total{kind="` + k + `"}`)
		}
		return m
	}()
	evictingGauge      = metrics.NewGauge(`l1gw_redis_evicting`, nil)
	sentinelsReachable = metrics.NewGauge(`l1gw_sentinels_reachable`, nil)
	replicaFallbacks   = metrics.NewCounter(`l1gw_replica_fallbacks_total`)
	recordsWritten     = metrics.NewCounter(`l1gw_replica_records_total{result="written"}`)
	recordsFailed      = metrics.NewCounter(`l1gw_replica_records_total{result="failed"}`)
	recordsDropped     = metrics.NewCounter(`l1gw_replica_records_total{result="dropped"}`)
	// sharedDecisions counts the decisions answered by a script call
	// shared with others of the same rules (lane.roundTrip).
	sharedDecisions = metrics.NewCounter(`l1gw_decisions_shared_total`)
)

func init() {
	evictingGauge.Set(0) // exported from the start, not at the first eviction
}
