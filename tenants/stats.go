package tenants

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// UnknownID is the tenant label of requests refused for want of a known key.
const UnknownID = "unknown"

// trackedCodes are the status codes counted under their own label; any
// other code counts under its class ("1xx" … "5xx", or "other").
var trackedCodes = [...]int{
	200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308,
	400, 401, 403, 404, 405, 408, 409, 410, 412, 413, 415, 422, 429, 431,
	500, 501, 502, 503, 504,
}

// classSlots follow the tracked codes: 1xx … 5xx, then other.
const classSlots = 6

// codeSlot maps a status code to its counter slot (immutable).
var codeSlot = func() (s [600]uint8) {
	for i := range s {
		s[i] = uint8(len(trackedCodes) + classSlots - 1) // other
		if i >= 100 {
			s[i] = uint8(len(trackedCodes) + i/100 - 1) // 1xx … 5xx
		}
	}
	for i, c := range trackedCodes {
		s[c] = uint8(i)
	}
	return s
}()

func slotLabel(slot int) string {
	if slot < len(trackedCodes) {
		return fmt.Sprint(trackedCodes[slot])
	}
	if c := slot - len(trackedCodes) + 1; c >= 1 && c <= 5 {
		return fmt.Sprintf("%dxx", c)
	}
	return "other"
}

// Stats are one tenant's metric handles, resolved when the tenant table is
// built so the request path never formats a metric name. Tenant labels only
// ever name configured tenants, "anonymous" or "unknown". About 300 bytes
// per tenant.
type Stats struct {
	// Allowed, Denied, Degraded and Overloaded count rate-limit decisions
	// by result (overloaded: shed before Redis was asked).
	Allowed, Denied, Degraded, Overloaded *metrics.Counter
	// ShadowDenied counts the decisions a shadow rule would have denied,
	// besides their result: result="shadow_denied".
	ShadowDenied *metrics.Counter

	id    string
	codes [len(trackedCodes) + classSlots]atomic.Pointer[metrics.Counter] // created on first use
	// retired: the tenant's series were unregistered (Retire); a code
	// first counted after is counted nowhere, or it would come back.
	retired atomic.Bool
}

// decisionsName and requestsName are a tenant's series names.
func decisionsName(id, result string) string {
	return fmt.Sprintf(`l1gw_ratelimit_decisions_total{tenant=%q,result=%q}`, id, result)
}

func requestsName(id string, slot int) string {
	return fmt.Sprintf(`l1gw_requests_total{tenant=%q,code=%q}`, id, slotLabel(slot))
}

// decisionResults are the result labels of l1gw_ratelimit_decisions_total.
var decisionResults = [...]string{"allowed", "denied", "degraded", "overloaded", "shadow_denied"}

// Retire unregisters the metric series of the tenants labelled in old and
// not in cur, so that a reload that drops tenants (or moves them past
// metrics_max) leaves no frozen series behind. Handles a request still
// holds go on counting, unexported. Call it once cur is in force.
func Retire(old, cur *Snapshot) {
	if old == nil {
		return
	}
	for id, t := range old.byID {
		if t.Stats == nil || t.Stats.id != id {
			continue // not labelled: counted under OtherID
		}
		if n, ok := cur.byID[id]; ok && n.Stats != nil && n.Stats.id == id {
			continue // still labelled: the same series
		}
		registering.Lock()
		t.Stats.retired.Store(true)
		for _, r := range decisionResults {
			metrics.UnregisterMetric(decisionsName(id, r))
		}
		for slot := range len(trackedCodes) + classSlots {
			metrics.UnregisterMetric(requestsName(id, slot))
		}
		registering.Unlock()
	}
}

// NewStats returns the handles for tenant label id.
func NewStats(id string) *Stats {
	decision := func(result string) *metrics.Counter {
		return metrics.GetOrCreateCounter(decisionsName(id, result))
	}
	return &Stats{id: id, Allowed: decision("allowed"), Denied: decision("denied"), Degraded: decision("degraded"),
		Overloaded: decision("overloaded"), ShadowDenied: decision("shadow_denied")}
}

// Response counts one response in l1gw_requests_total{tenant,code}: common
// codes under their own label, others under their class ("4xx").
func (s *Stats) Response(code int) {
	slot := len(trackedCodes) + classSlots - 1 // other
	if code >= 100 && code < len(codeSlot) {
		slot = int(codeSlot[code])
	}
	c := s.codes[slot].Load()
	if c == nil {
		registering.Lock()
		if s.retired.Load() {
			// A request that outlived its tenant's removal (a long
			// stream, a tunnel) counts nowhere: a series of the name now
			// is a later Stats' (the tenant added back), not this one's
			// to count in or to unregister.
			c = new(metrics.Counter)
		} else {
			c = metrics.GetOrCreateCounter(requestsName(s.id, slot))
		}
		registering.Unlock()
		s.codes[slot].Store(c)
	}
	c.Inc()
}

// registering orders Response's first count of a code, which registers its
// series, against Retire's unregistering: a series is registered before
// its Stats is retired, and unregistered then, or never.
var registering sync.Mutex
