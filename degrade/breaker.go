package degrade

import (
	"sync"
	"time"
)

// State is a circuit breaker's state.
type State int

// Breaker states; the values are those of the l1gw_breaker_state metric.
const (
	// Closed: calls go through.
	Closed State = iota
	// HalfOpen: the cooldown is over; one probe call goes through.
	HalfOpen
	// Open: no call goes through until the cooldown is over.
	Open
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	}
	return "open"
}

// Breaker stops calls to a failing dependency: after Failures failures in
// a row it opens for a cooldown, then lets one probe through; the probe's
// success closes it, its failure opens it again.
//
// The cooldown starts at Cooldown and doubles, up to MaxCooldown, each time
// the breaker opens again without having stayed closed for MaxCooldown: a
// failed probe, or a dependency that fails again soon after a good probe.
// So a blip costs a short cooldown, a long outage few probes, and a
// dependency that flaps the longest cooldown. Safe for concurrent use.
type Breaker struct {
	failures int
	first    time.Duration // Cooldown
	longest  time.Duration // MaxCooldown, at least Cooldown
	now      func() time.Time
	onChange func(State)

	mu       sync.Mutex
	state    State
	gen      uint64        // bumped on every state change: tells late results apart
	streak   int           // failures in a row while closed
	cooldown time.Duration // of the current or last opening
	openedAt time.Time     // when it last opened
	closedAt time.Time     // when it last closed after opening
	asked    time.Time     // the last Allow while not closed
	probing  bool          // a half-open probe is out
}

// Ticket is a call Allow let out; hand it back to Done.
type Ticket struct{ gen uint64 }

// NewBreaker returns a closed breaker. now is the clock (nil: time.Now);
// onChange, if not nil, is called with every new state, under the
// breaker's lock (keep it short).
func NewBreaker(o BreakerOptions, now func() time.Time, onChange func(State)) *Breaker {
	if now == nil {
		now = time.Now
	}
	if onChange == nil {
		onChange = func(State) {}
	}
	return &Breaker{failures: max(o.Failures, 1), first: o.Cooldown, longest: max(o.MaxCooldown, o.Cooldown),
		now: now, onChange: onChange}
}

// Allow reports whether a call may go out now. A call let out must be
// followed by exactly one Done with its ticket.
func (b *Breaker) Allow() (Ticket, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return Ticket{b.gen}, true
	case Open:
		b.asked = b.now()
		if b.asked.Sub(b.openedAt) < b.cooldown {
			return Ticket{}, false
		}
		b.set(HalfOpen)
	}
	if b.probing {
		return Ticket{}, false
	}
	b.probing = true
	return Ticket{b.gen}, true
}

// Done records the outcome of a call. The result of a call let out in an
// earlier state (a slow call that finished after the breaker opened) is
// ignored: it says nothing about the state the breaker is in now.
func (b *Breaker) Done(t Ticket, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.gen != b.gen {
		return
	}
	switch b.state {
	case HalfOpen:
		b.probing = false
		if ok {
			b.streak = 0
			b.set(Closed)
		} else {
			b.open()
		}
	case Closed:
		if ok {
			b.streak = 0
			return
		}
		if b.streak++; b.streak >= b.failures {
			b.open()
		}
	}
}

// Cancel hands back a ticket whose call was never made, so it says
// nothing about the dependency: a half-open probe may go out again.
func (b *Breaker) Cancel(t Ticket) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.gen == b.gen && b.state == HalfOpen {
		b.probing = false
	}
}

// Cooldown is how long the breaker stays open after its last opening.
func (b *Breaker) Cooldown() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cooldown
}

// OpenedAt is when the breaker last opened; zero if it never has.
func (b *Breaker) OpenedAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.openedAt
}

// forgotten reports whether the breaker is not closed and nothing has
// asked it since before cutoff: its dependency is no longer used (a
// Cluster node the slots moved away from).
func (b *Breaker) forgotten(cutoff time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	last := b.asked
	if b.openedAt.After(last) {
		last = b.openedAt
	}
	return b.state != Closed && last.Before(cutoff)
}

// State is the current state.
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open && b.now().Sub(b.openedAt) >= b.cooldown {
		return HalfOpen // the next Allow probes
	}
	return b.state
}

// open opens the breaker: for the first cooldown when it is new or stayed
// closed for the longest cooldown since it last closed, else for twice the
// last one (up to the longest).
func (b *Breaker) open() {
	now := b.now()
	// A breaker that opened before (cooldown set) and is closed now has
	// closed since: closedAt is set.
	if b.cooldown == 0 || b.state == Closed && now.Sub(b.closedAt) >= b.longest {
		b.cooldown = b.first
	} else {
		b.cooldown = min(2*b.cooldown, b.longest)
	}
	b.openedAt = now
	b.streak = 0
	b.set(Open)
}

func (b *Breaker) set(s State) {
	if b.state != s {
		if s == Closed {
			b.closedAt = b.now()
		}
		b.state = s
		b.gen++
		b.onChange(s)
	}
}
