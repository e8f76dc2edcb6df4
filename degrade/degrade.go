// Package degrade turns "the store could not decide" into a verdict, so a
// Redis stall, failover or outage never takes the edge down: a circuit
// breaker, the replica's word where the primary is gone, and the fail
// modes. The store keeps to the budget itself (limiter's pipes judge it on
// evidence from the connection); degrade only decides what its errors
// mean: ErrBudget and any other failure degrade, ErrOverload sheds.
package degrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/l1gw/l1gw/limiter"
)

// Store is what a Guard decides through: limiter's memory and Redis stores.
type Store interface {
	// Decide is limiter.Store's. A store that does I/O returns within its
	// budget: an error wrapping limiter.ErrBudget when Redis stayed
	// silent, limiter.ErrOverload when the gateway could not send the
	// decision in time.
	Decide(ctx context.Context, req limiter.Request) (limiter.Decision, error)
	// ReplicaDenies returns a denial when a replica shows a rule of req
	// already full (a replica never shows more than the truth, so such a
	// denial is always right); ok is false when it shows room, and where
	// there is no replica. It waits at most within.
	ReplicaDenies(ctx context.Context, req limiter.Request, within time.Duration) (d limiter.Decision, ok bool, err error)
}

// Verdict is what the request path acts on.
type Verdict struct {
	// Allowed: forward the request.
	Allowed bool
	// Degraded: the primary's answer was not had, or the store decided
	// without part of the shared state.
	Degraded bool
	// Refused: nothing could decide and the fail mode is closed: 503.
	Refused bool
	// Overloaded: the gateway could not get the decision to Redis in time.
	// The request is shed with 503 and Retry-After, never admitted
	// unchecked, and it is not degraded: Redis did nothing wrong.
	Overloaded bool
	// Decision holds the rule states behind the verdict: the store's, the
	// replica's, or the local store's in fail mode local. N is 0 when
	// there are none.
	Decision limiter.Decision
}

// Guard decides through a store, and by the fail mode when it cannot.
type Guard struct {
	store    Store
	settings Settings
	primary  *Breaker
	replica  *Breaker
	local    *localLimits // nil unless the fail mode is local
	log      *slog.Logger
	lastLog  atomic.Int64
	calls    countedCalls // the failed calls the breaker has counted lately
}

// Options are the parts of a Guard besides its settings.
type Options struct {
	// Now is the clock of the breakers; nil is time.Now.
	Now func() time.Time
	// Log receives store errors, at most one line a second.
	Log *slog.Logger
}

// New returns a Guard over store. It does no I/O.
func New(store Store, s Settings, o Options) (*Guard, error) {
	switch s.FailMode {
	case FailOpen, FailClosed, FailLocal:
	default:
		return nil, fmt.Errorf("degrade: fail mode %q is not supported", s.FailMode)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	g := &Guard{store: store, settings: s, log: o.Log,
		primary: NewBreaker(s.Breaker, o.Now, breakerState),
		replica: NewBreaker(s.Breaker, o.Now, nil)}
	if s.FailMode == FailLocal {
		g.local = newLocalLimits(max(s.ExpectedGateways, 1))
	}
	return g, nil
}

// BreakerState is the primary breaker's state.
func (g *Guard) BreakerState() State { return g.primary.State() }

// Decide asks the store and never fails: a store that errs or stays silent
// past the budget, or that the breaker cuts off, gets a degraded verdict;
// a decision the gateway could not send in time gets an overloaded one.
func (g *Guard) Decide(ctx context.Context, req limiter.Request) Verdict {
	ticket, ok := g.primary.Allow()
	if !ok {
		degradedTotal(reasonBreaker).Inc()
		g.logError(reasonBreaker, nil)
		return g.fallback(ctx, req, g.settings.Budget)
	}
	d, err := g.store.Decide(ctx, req)
	if err == nil {
		g.primary.Done(ticket, true)
		return Verdict{Allowed: d.Allowed, Degraded: d.Degraded, Decision: d}
	}
	if errors.Is(err, limiter.ErrOverload) {
		g.primary.Cancel(ticket) // says nothing about Redis
		overloadTotal.Inc()
		return Verdict{Overloaded: true}
	}
	g.failed(ticket, err)
	reason, left := reasonError, g.settings.Budget
	if errors.Is(err, limiter.ErrBudget) {
		reason, left = reasonBudget, 0 // the primary's silence took it all
	}
	degradedTotal(reason).Inc()
	g.logError(reason, err)
	return g.fallback(ctx, req, left)
}

// failed reports a failed decision to the breaker once per failed call to
// Redis: the decisions a batch carried fail together, and one slow batch is
// one failure, not one per decision.
func (g *Guard) failed(ticket Ticket, err error) {
	var ce *limiter.CallError
	if errors.As(err, &ce) && !g.calls.first(ce.ID) {
		g.primary.Cancel(ticket) // this call was counted already
		return
	}
	g.primary.Done(ticket, false)
}

// countedCalls remembers the IDs of the last few failed calls counted, so
// each counts once whatever order its decisions come back in.
type countedCalls struct {
	mu   sync.Mutex
	ids  [16]uint64
	next int
}

// first reports whether id is new, and remembers it.
func (c *countedCalls) first(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, seen := range c.ids {
		if seen == id {
			return false
		}
	}
	c.ids[c.next] = id
	c.next = (c.next + 1) % len(c.ids)
	return true
}

// fallback is the verdict without the primary: the replica's denial if it
// gives one within what is left of the budget, else the fail mode's. The
// budget is one for the whole decision: a primary silent past it leaves
// nothing; one that failed at once (refused, an error reply) leaves it
// whole, since the store judges silence only and answers errors as they
// come.
func (g *Guard) fallback(ctx context.Context, req limiter.Request, within time.Duration) Verdict {
	v := Verdict{Degraded: true}
	if within > 0 {
		if ticket, ok := g.replica.Allow(); ok {
			d, denied, err := g.store.ReplicaDenies(ctx, req, within)
			g.replica.Done(ticket, err == nil)
			if denied {
				replicaDenials.Inc()
				v.Decision = d
				return v
			}
		}
	}
	switch g.settings.FailMode {
	case FailClosed:
		v.Refused = true
	case FailLocal:
		v.Decision = g.local.decide(ctx, req)
		v.Allowed = v.Decision.Allowed
	default:
		v.Allowed = true
	}
	return v
}

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

// Why a decision degraded: the label values of
// l1gw_degraded_decisions_total{reason}.
const (
	reasonError   = "error"   // the store answered with an error
	reasonBudget  = "budget"  // Redis stayed silent past the budget
	reasonBreaker = "breaker" // the breaker is open: the store was not asked
)

var (
	breakerGauge   = metrics.NewGauge(`l1gw_breaker_state`, nil)
	replicaDenials = metrics.NewCounter(`l1gw_replica_denials_total`)
	overloadTotal  = metrics.NewCounter(`l1gw_overload_total`)
	// degradedCounters is l1gw_degraded_decisions_total by reason.
	degradedCounters = map[string]*metrics.Counter{
		reasonError:   metrics.NewCounter(`l1gw_degraded_decisions_total{reason="error"}`),
		reasonBudget:  metrics.NewCounter(`l1gw_degraded_decisions_total{reason="budget"}`),
		reasonBreaker: metrics.NewCounter(`l1gw_degraded_decisions_total{reason="breaker"}`),
	}
)

// breakerState publishes the primary breaker's state.
func breakerState(s State) { breakerGauge.Set(float64(s)) }

func degradedTotal(reason string) *metrics.Counter { return degradedCounters[reason] }
