package degrade

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// Why a decision degraded: the label values of
// l1gw_degraded_decisions_total{reason}.
const (
	reasonError   = "error"   // the store answered with an error
	reasonBudget  = "budget"  // the store did not answer within the budget
	reasonBreaker = "breaker" // the breaker is open: the store was not asked
	reasonShed    = "shed"    // too many calls in flight: the store was not asked
)

// maxInflight caps the store calls in flight per Guard: past it a stalled
// Redis would pile up goroutines and connections.
const maxInflight = 1024

// call runs store calls under a budget, an in-flight cap and a breaker.
type call struct {
	breaker  *Breaker
	inflight chan struct{}
}

func newCall(s Settings, now func() time.Time, onChange func(State)) *call {
	return &call{
		breaker:  NewBreaker(s.Breaker, now, onChange),
		inflight: make(chan struct{}, maxInflight),
	}
}

// outcome is one call's result, handed from the call's goroutine to the
// waiter; settled makes sure exactly one of them reports to the breaker.
type outcome struct {
	d       limiter.Decision
	err     error
	settled atomic.Bool
	done    chan struct{}
}

// do runs f within budget. reason is "" when f answered in time without an
// error. A call past the budget goes on in the background (its write still
// lands and counts) and is reported to the breaker as a failure.
func (c *call) do(budget time.Duration, f func(context.Context) (limiter.Decision, error)) (limiter.Decision, string, error) {
	if budget <= 0 {
		return limiter.Decision{}, reasonBudget, nil
	}
	ticket, ok := c.breaker.Allow()
	if !ok {
		return limiter.Decision{}, reasonBreaker, nil
	}
	select {
	case c.inflight <- struct{}{}:
	default:
		c.breaker.Done(ticket, false)
		return limiter.Decision{}, reasonShed, nil
	}
	o := &outcome{done: make(chan struct{})}
	go func() {
		// No deadline of its own: the store's client bounds every command
		// (redis.read_timeout, pool_timeout, dial_timeout), and a context
		// deadline would make go-redis close the connection on expiry.
		o.d, o.err = f(context.Background())
		<-c.inflight
		if o.settled.CompareAndSwap(false, true) {
			c.breaker.Done(ticket, o.err == nil || errors.Is(o.err, errNoDenial))
		}
		close(o.done)
	}()
	timer := time.NewTimer(budget)
	defer timer.Stop()
	select {
	case <-o.done:
		if o.err != nil {
			return limiter.Decision{}, reasonError, o.err
		}
		return o.d, "", nil
	case <-timer.C:
		if o.settled.CompareAndSwap(false, true) {
			c.breaker.Done(ticket, false)
		}
		return limiter.Decision{}, reasonBudget, nil
	}
}
