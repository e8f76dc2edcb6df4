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
	// Shard names the node that decides tenant's requests (a Cluster
	// primary), "" where one node decides them all. Breakers are per
	// shard: a fault on one degrades only its tenants.
	Shard(tenant string) string
	// Release gives back the lease that decision seq took in tenant's
	// Lease rule r, without waiting.
	Release(tenant string, r limiter.Rule, seq uint64)
	// Renew keeps that lease in r's window, dated from now, for a request
	// that lasts longer (a tunnel), until it is given back: a lease the
	// store no longer holds (lost, or out of its window) is taken again
	// if r has room.
	Renew(tenant string, r limiter.Rule, seq uint64)
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
	// leases says who holds the leases of an admitted request's
	// concurrency limits, for Release.
	leases leaseHolder
}

// leaseHolder is where an admitted request's leases were taken.
type leaseHolder uint8

const (
	leasesNone  leaseHolder = iota
	leasesStore             // the store's: Redis, or the memory store
	leasesLocal             // this gateway's, while the store could not decide
)

// Guard decides through a store, and by the fail mode when it cannot.
type Guard struct {
	store    Store
	settings Settings
	now      func() time.Time
	shards   sync.Map     // shard name → *shard
	local    *localLimits // fail mode local; and concurrency limits in fail mode open
	log      *slog.Logger
	lastLog  atomic.Int64
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
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Guard{store: store, settings: s, log: o.Log, now: o.Now}
	currentGuard.Store(g)
	g.local = newLocalLimits(max(s.ExpectedGateways, 1))
	return g, nil
}

// currentGuard is the Guard l1gw_breaker_state reports: the last built.
var currentGuard atomic.Pointer[Guard]

// Decide puts in v the verdict on req, whatever v held. It asks the store
// and never fails: a store that errs or stays silent past the budget, or
// that the breaker cuts off, gets a degraded verdict; a decision the
// gateway could not send in time gets an overloaded one. v is filled in
// place: a Verdict is about 1.2 KB, and the request path keeps one per
// request.
func (g *Guard) Decide(ctx context.Context, req limiter.Request, v *Verdict) {
	v.Reset()
	sh := g.shard(g.store.Shard(req.Tenant))
	ticket, ok := sh.primary.Allow()
	if !ok {
		degradedTotal(reasonBreaker).Inc()
		g.logBreaker(sh)
		g.fallback(ctx, sh, req, g.settings.Budget, v)
		return
	}
	var err error
	v.Decision, err = g.store.Decide(ctx, req)
	if err == nil {
		d := &v.Decision
		if d.Cached {
			sh.primary.Cancel(ticket) // Redis was not asked: no evidence either way
		} else {
			sh.primary.Done(ticket, true)
		}
		if d.Degraded {
			degradedTotal(d.Why).Inc()
			g.logError(d.Why, sh, nil)
		}
		v.Allowed, v.Degraded = d.Allowed, d.Degraded
		if d.Allowed && limiter.HasLease(req.Rules) {
			v.leases = leasesStore
		}
		return
	}
	v.Decision.N = 0
	if errors.Is(err, limiter.ErrOverload) {
		sh.primary.Cancel(ticket) // says nothing about Redis
		overloadTotal.Inc()
		v.Overloaded = true
		return
	}
	sh.failed(ticket, err)
	reason, left := reasonError, g.settings.Budget
	if errors.Is(err, limiter.ErrBudget) {
		reason, left = reasonBudget, 0 // the primary's silence took it all
	}
	degradedTotal(reason).Inc()
	g.logError(reason, sh, err)
	g.fallback(ctx, sh, req, left, v)
}

// fallback is the verdict without the primary: the replica's denial if it
// gives one within what is left of the budget, else the fail mode's. The
// budget is one for the whole decision: a primary silent past it leaves
// nothing; one that failed at once (refused, an error reply) leaves it
// whole, since the store judges silence only and answers errors as they
// come. It sets v's fields, which Decide cleared but for its Decision.
func (g *Guard) fallback(ctx context.Context, sh *shard, req limiter.Request, within time.Duration, v *Verdict) {
	v.Degraded = true
	v.Decision = limiter.Decision{}
	if within > 0 {
		if ticket, ok := sh.replica.Allow(); ok {
			d, denied, err := g.store.ReplicaDenies(ctx, req, within)
			sh.replica.Done(ticket, err == nil)
			if denied {
				replicaDenials.Inc()
				v.Decision = d
				return
			}
		}
	}
	switch g.settings.FailMode {
	case FailClosed:
		v.Refused = true
	case FailLocal:
		v.Decision = g.local.decide(ctx, req, false)
		v.Allowed = v.Decision.Allowed
	default:
		v.Allowed = true
		if limiter.HasLease(req.Rules) {
			// Open, but a concurrency limit still holds: each gateway its
			// share of it, in its own memory.
			v.Decision = g.local.decide(ctx, req, true)
			v.Allowed = v.Decision.Allowed
		}
	}
	if v.Allowed && limiter.HasLease(req.Rules) {
		v.leases = leasesLocal
	}
}

// Reset makes v a verdict of nothing (no rule states, no leases) without
// zeroing the rule states past Decision.N, which nothing reads: the
// request path reuses a Verdict for request after request.
func (v *Verdict) Reset() {
	v.Allowed, v.Degraded, v.Refused, v.Overloaded, v.leases = false, false, false, false, leasesNone
	d := &v.Decision
	d.Allowed, d.Degraded, d.Cached, d.Why, d.N, d.Seq = false, false, false, "", 0, 0
}

// HoldsLeases reports whether the request took leases for concurrency
// limits: Release must give them back when its response ends.
func (v *Verdict) HoldsLeases() bool { return v.leases != leasesNone }

// Renew keeps the leases an admitted request took for its concurrency
// limits in their windows, where they were taken: a request that lasts
// (a tunnel) calls it every third of its shortest lease window while it
// is open. It may wait for Redis, at most a second.
func (g *Guard) Renew(req limiter.Request, v *Verdict) {
	g.eachLease(req, v, Store.Renew)
}

// Release gives back the leases an admitted request took for its
// concurrency limits (req and v are the request and its verdict), where
// they were taken. The request path calls it once the response has ended.
func (g *Guard) Release(req limiter.Request, v *Verdict) {
	g.eachLease(req, v, Store.Release)
	v.leases = leasesNone
}

// eachLease calls f with the store where v's leases were taken, for each
// Lease rule of req.
func (g *Guard) eachLease(req limiter.Request, v *Verdict, f func(Store, string, limiter.Rule, uint64)) {
	var s Store
	local := false
	switch v.leases {
	case leasesNone:
		return
	case leasesLocal:
		s, local = g.local.store, true
	default:
		s = g.store
	}
	for i := range req.Rules {
		if r := req.Rules[i]; r.Lease {
			if local {
				// The limit the local lease was taken under: a renewal
				// that takes a lost lease back judges room by it.
				r.Limit = g.local.share(r.Limit)
			}
			f(s, req.Tenant, r, v.Decision.Seq)
		}
	}
}

// logError logs why a decision degraded, at most once a second (for all
// reasons together): the error, or the store's reason for a degraded
// decision.
func (g *Guard) logError(reason string, sh *shard, err error) {
	if !g.mayLog() {
		return
	}
	attrs := []any{"reason", reason, "shard", sh.name, "fail_mode", g.settings.FailMode}
	if err != nil {
		attrs = append(attrs, "err", err.Error(), "kind", limiter.ErrorKind(err))
	}
	g.log.Warn("rate-limit decision degraded", attrs...)
}

// logBreaker logs, at most once a second, that a decision degraded because
// its shard's breaker is open: since when, for how long, and after which
// error.
func (g *Guard) logBreaker(sh *shard) {
	if !g.mayLog() {
		return
	}
	last := ""
	if p := sh.lastErr.Load(); p != nil {
		last = *p
	}
	g.log.Warn("rate-limit decision degraded", "reason", reasonBreaker, "shard", sh.name,
		"breaker_open_since", sh.primary.OpenedAt().UTC().Format(time.RFC3339Nano),
		"breaker_cooldown", sh.primary.Cooldown().String(), "after_err", last,
		"fail_mode", g.settings.FailMode)
}

func (g *Guard) mayLog() bool {
	now := time.Now().UnixNano()
	last := g.lastLog.Load()
	return now-last >= int64(time.Second) && g.lastLog.CompareAndSwap(last, now)
}

// Why a decision degraded: the label values of
// l1gw_degraded_decisions_total{reason}.
const (
	reasonError   = "error"   // the store answered with an error
	reasonBudget  = "budget"  // Redis stayed silent past the budget
	reasonBreaker = "breaker" // the breaker is open: the store was not asked
)

// degradedReasons are every reason a decision is counted degraded under:
// the Guard's own, and the store's (limiter.Decision.Why).
var degradedReasons = []string{reasonError, reasonBudget, reasonBreaker,
	limiter.WhyRecorder, limiter.WhyEvicting, limiter.WhyUnconfirmed, limiter.WhyRestarted}

var (
	_ = metrics.NewGauge(`l1gw_breaker_state`, func() float64 {
		if g := currentGuard.Load(); g != nil {
			return float64(g.BreakerState())
		}
		return 0
	})
	replicaDenials = metrics.NewCounter(`l1gw_replica_denials_total`)
	overloadTotal  = metrics.NewCounter(`l1gw_overload_total`)
	// degradedCounters is l1gw_degraded_decisions_total by reason.
	degradedCounters = func() map[string]*metrics.Counter {
		m := make(map[string]*metrics.Counter, len(degradedReasons))
		for _, r := range degradedReasons {
			m[r] = metrics.NewCounter(`l1gw_degraded_decisions_total{reason="` + r + `"}`)
		}
		return m
	}()
)

// degradedTotal is the counter of reason; an unknown reason (a store's
// that is not listed) counts as an error.
func degradedTotal(reason string) *metrics.Counter {
	if c := degradedCounters[reason]; c != nil {
		return c
	}
	return degradedCounters[reasonError]
}
