// Package degrade turns "the store could not decide" into a verdict, so a
// Redis outage never takes the edge down. It owns the fail modes, and (as
// the Redis store arrives) the time budget and the circuit breaker.
package degrade

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// Verdict is what the request path acts on.
type Verdict struct {
	// Decision is the store's answer; N is 0 when the store gave none.
	limiter.Decision
	// Degraded is true when the verdict was reached without the store.
	Degraded bool
	// Refused is true when the store could not decide and the fail mode
	// is closed: the request gets 503.
	Refused bool
}

// Guard wraps a Store with the fail mode.
type Guard struct {
	store    limiter.Store
	failMode string
	log      *slog.Logger
	lastLog  atomic.Int64 // unix nanos of the last logged store error
}

// New returns a Guard over store. It does no I/O.
func New(store limiter.Store, o Settings, log *slog.Logger) (*Guard, error) {
	switch o.FailMode {
	case FailOpen, FailClosed:
	default:
		return nil, fmt.Errorf("degrade: fail mode %q is not supported", o.FailMode)
	}
	return &Guard{store: store, failMode: o.FailMode, log: log}, nil
}

// Decide asks the store and never fails: a store error becomes a degraded
// verdict by the fail mode.
func (g *Guard) Decide(ctx context.Context, req limiter.Request) Verdict {
	d, err := g.store.Decide(ctx, req)
	if err == nil {
		return Verdict{Decision: d}
	}
	g.logError(err)
	v := Verdict{Degraded: true}
	if g.failMode == FailClosed {
		v.Refused = true
		return v
	}
	v.Allowed = true
	return v
}

// logError logs store errors at most once a second.
func (g *Guard) logError(err error) {
	now := time.Now().UnixNano()
	last := g.lastLog.Load()
	if now-last < int64(time.Second) || !g.lastLog.CompareAndSwap(last, now) {
		return
	}
	g.log.Warn("rate-limit store could not decide; degraded", "err", err.Error(), "fail_mode", g.failMode)
}
