package tenants

import (
	"fmt"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// UnknownID is the tenant label of requests refused for want of a known key.
const UnknownID = "unknown"

// Stats are one tenant's metric handles, resolved when the tenant table is
// built so the request path never formats a metric name. Tenant labels only
// ever name configured tenants, "anonymous" or "unknown".
type Stats struct {
	// Allowed, Denied and Degraded count rate-limit decisions by result.
	Allowed, Denied, Degraded *metrics.Counter

	id    string
	codes [600]atomic.Pointer[metrics.Counter] // by status code, created on first use
}

// NewStats returns the handles for tenant label id.
func NewStats(id string) *Stats {
	decision := func(result string) *metrics.Counter {
		return metrics.GetOrCreateCounter(fmt.Sprintf(`l1gw_ratelimit_decisions_total{tenant=%q,result=%q}`, id, result))
	}
	return &Stats{id: id, Allowed: decision("allowed"), Denied: decision("denied"), Degraded: decision("degraded")}
}

// Response counts one response with the given status code in
// l1gw_requests_total. Codes outside 100–599 count as 0.
func (s *Stats) Response(code int) {
	if code < 100 || code >= len(s.codes) {
		code = 0
	}
	c := s.codes[code].Load()
	if c == nil {
		c = metrics.GetOrCreateCounter(fmt.Sprintf(`l1gw_requests_total{tenant=%q,code="%d"}`, s.id, code))
		s.codes[code].Store(c)
	}
	c.Inc()
}
