package degrade

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// shard is the breakers of one shard and what they have counted.
type shard struct {
	name    string
	primary *Breaker
	replica *Breaker
	calls   countedCalls // the failed calls the breaker has counted lately
	lastErr atomic.Pointer[string]
}

// BreakerState is the worst state of the shards' primary breakers: Open
// when any shard's is open. A shard no decision has asked for longer than
// forgetAfter (a Cluster node the slots left) does not count.
func (g *Guard) BreakerState() State {
	worst := Closed
	cutoff := g.now().Add(-max(2*g.settings.Breaker.Cooldown, 2*g.settings.Breaker.MaxCooldown, forgetAfter))
	g.shards.Range(func(_, v any) bool {
		if b := v.(*shard).primary; !b.forgotten(cutoff) {
			worst = max(worst, b.State())
		}
		return true
	})
	return worst
}

// forgetAfter is how long an unused shard's open breaker still counts in
// BreakerState (at least twice the longest cooldown).
const forgetAfter = 5 * time.Second

// shard returns the breakers of the named shard, made on first use.
func (g *Guard) shard(name string) *shard {
	if v, ok := g.shards.Load(name); ok {
		return v.(*shard)
	}
	sh := &shard{name: name, primary: NewBreaker(g.settings.Breaker, g.now, nil),
		replica: NewBreaker(g.settings.Breaker, g.now, nil)}
	v, _ := g.shards.LoadOrStore(name, sh)
	return v.(*shard)
}

// failed reports a failed decision to the breaker once per failed call to
// Redis: the decisions a batch carried fail together, and one slow batch is
// one failure, not one per decision.
func (sh *shard) failed(ticket Ticket, err error) {
	var ce *limiter.CallError
	if errors.As(err, &ce) && !sh.calls.first(ce.ID) {
		sh.primary.Cancel(ticket) // this call was counted already
		return
	}
	msg := err.Error()
	sh.lastErr.Store(&msg)
	sh.primary.Done(ticket, false)
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
