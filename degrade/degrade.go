// Package degrade turns "the store could not decide" into a verdict, so a
// Redis stall, failover or outage never takes the edge down: a time budget
// per decision, a cap on calls in flight, a circuit breaker, the replica's
// word where the primary is gone, and the fail modes.
package degrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/l1gw/l1gw/limiter"
)

// Verdict is what the request path acts on.
type Verdict struct {
	// Decision is the answer: the store's, the replica's, or the local
	// store's in fail mode local; N is 0 when there is none.
	limiter.Decision
	// Degraded is true when the primary's answer was not had.
	Degraded bool
	// Refused is true when nothing could decide and the fail mode is
	// closed: the request gets 503.
	Refused bool
}

// ReplicaChecker is a store that can ask a replica, when the primary does
// not answer, whether a rule is already full there (a replica never shows
// more than the truth, so such a denial is always right).
type ReplicaChecker interface {
	// ReplicaDenies returns a denial when the replica shows a rule of req
	// without room; ok is false when it shows room in every rule.
	ReplicaDenies(ctx context.Context, req limiter.Request) (d limiter.Decision, ok bool, err error)
}

// CachedDenier is a store that can answer some requests from memory; the
// Guard asks it before spending a goroutine and a budget on a call.
type CachedDenier interface {
	CachedDenial(req limiter.Request) (limiter.Decision, bool)
}

// Guard decides through a store within a budget, and by the fail mode
// when the store cannot.
type Guard struct {
	store    limiter.Store
	settings Settings
	primary  *call
	replica  *call          // nil without a ReplicaChecker
	checker  ReplicaChecker // nil without a replica to ask
	local    *localLimits   // nil unless the fail mode is local
	log      *slog.Logger
	lastLog  atomic.Int64
}

// Options are the parts of a Guard besides its settings.
type Options struct {
	// Blocking is true for a store that does I/O (Redis): its calls get
	// the budget, the in-flight cap and the breaker. The memory store is
	// called directly.
	Blocking bool
	// Replica, if not nil, is asked while the primary does not answer,
	// within what is left of the budget. Leave it nil where the replica
	// client would reach the primary itself (standalone mode).
	Replica ReplicaChecker
	// Now is the clock of the breakers; nil is time.Now.
	Now func() time.Time
	// Log receives store errors, at most one line a second.
	Log *slog.Logger
}

// New returns a Guard over store. It does no I/O.
func New(store limiter.Store, s Settings, o Options) (*Guard, error) {
	switch s.FailMode {
	case FailOpen, FailClosed, FailLocal:
	default:
		return nil, fmt.Errorf("degrade: fail mode %q is not supported", s.FailMode)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	g := &Guard{store: store, settings: s, checker: o.Replica, log: o.Log}
	if o.Blocking {
		g.primary = newCall(s, o.Now, breakerState)
		if o.Replica != nil {
			g.replica = newCall(s, o.Now, nil)
		}
	}
	if s.FailMode == FailLocal {
		g.local = newLocalLimits(max(s.ExpectedGateways, 1))
	}
	return g, nil
}

// Drain waits, up to timeout, for the store calls still running in the
// background (past their budget) to finish; main calls it at shutdown
// before closing what they use.
func (g *Guard) Drain(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for _, c := range []*call{g.primary, g.replica} {
		for c != nil && len(c.inflight) > 0 {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return true
}

// BreakerState is the primary breaker's state; Closed for a store that is
// called directly.
func (g *Guard) BreakerState() State {
	if g.primary == nil {
		return Closed
	}
	return g.primary.breaker.State()
}

// Decide asks the store and never fails: a store that errs, runs past the
// budget, is cut off by the breaker or has too many calls in flight gets a
// degraded verdict.
func (g *Guard) Decide(ctx context.Context, req limiter.Request) Verdict {
	if g.primary == nil {
		d, err := g.store.Decide(ctx, req)
		if err == nil {
			return Verdict{Decision: d, Degraded: d.Degraded}
		}
		degradedTotal(reasonError).Inc()
		g.logError(reasonError, err)
		return g.fallback(ctx, req, time.Now())
	}
	if cd, ok := g.store.(CachedDenier); ok {
		if d, hit := cd.CachedDenial(req); hit {
			return Verdict{Decision: d}
		}
	}
	deadline := time.Now().Add(g.settings.Budget)
	d, reason, err := g.primary.do(g.settings.Budget, func(c context.Context) (limiter.Decision, error) { return g.store.Decide(c, req) })
	if reason == "" {
		return Verdict{Decision: d, Degraded: d.Degraded}
	}
	degradedTotal(reason).Inc()
	g.logError(reason, err)
	return g.fallback(ctx, req, deadline)
}

// fallback is the verdict without the primary: the replica's denial if it
// gives one before deadline (what is left of the budget), else the fail
// mode's. The budget is one for the whole decision.
func (g *Guard) fallback(ctx context.Context, req limiter.Request, deadline time.Time) Verdict {
	v := Verdict{Degraded: true}
	if g.replica != nil {
		d, why, _ := g.replica.do(time.Until(deadline), func(c context.Context) (limiter.Decision, error) {
			d, denied, err := g.checker.ReplicaDenies(c, req)
			if err == nil && !denied {
				return d, errNoDenial
			}
			return d, err
		})
		if why == "" {
			replicaDenials.Inc()
			v.Decision = d
			return v
		}
	}
	switch g.settings.FailMode {
	case FailClosed:
		v.Refused = true
	case FailLocal:
		v.Decision = g.local.decide(ctx, req)
	default:
		v.Allowed = true
	}
	return v
}

// errNoDenial: the replica shows room, so it has nothing to say.
var errNoDenial = errors.New("degrade: the replica shows room")

// logError logs why a decision degraded, at most once a second.
func (g *Guard) logError(reason string, err error) {
	now := time.Now().UnixNano()
	last := g.lastLog.Load()
	if now-last < int64(time.Second) || !g.lastLog.CompareAndSwap(last, now) {
		return
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	g.log.Warn("rate-limit store did not decide; degraded", "reason", reason, "err", msg, "fail_mode", g.settings.FailMode)
}

var (
	breakerGauge   = metrics.NewGauge(`l1gw_breaker_state`, nil)
	replicaDenials = metrics.NewCounter(`l1gw_replica_denials_total`)
	// degradedCounters is l1gw_degraded_decisions_total by reason.
	degradedCounters = map[string]*metrics.Counter{
		reasonError:   metrics.NewCounter(`l1gw_degraded_decisions_total{reason="error"}`),
		reasonBudget:  metrics.NewCounter(`l1gw_degraded_decisions_total{reason="budget"}`),
		reasonBreaker: metrics.NewCounter(`l1gw_degraded_decisions_total{reason="breaker"}`),
		reasonShed:    metrics.NewCounter(`l1gw_degraded_decisions_total{reason="shed"}`),
	}
)

// breakerState publishes the primary breaker's state.
func breakerState(s State) { breakerGauge.Set(float64(s)) }

func degradedTotal(reason string) *metrics.Counter { return degradedCounters[reason] }
