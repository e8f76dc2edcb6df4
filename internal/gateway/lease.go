package gateway

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/upstream"
)

// A request under a concurrency limit holds a lease from its decision
// until its response has ended: for a buffered response, when Serve
// returns; for a streamed one, when fasthttp closes the stream after the
// last byte (or on failure); for an upgrade, when the tunnel closes.

// lease is what giving back an admission's leases takes: copied out of
// the admission, which may be recycled before the response ends.
type lease struct {
	req limiter.Request
	v   degrade.Verdict
}

// lease copies what a's release needs.
func (a *admission) lease() *lease {
	return &lease{req: limiter.Request{Tenant: a.limitKey, Rules: a.rules}, v: a.v}
}

// releaseAfter gives back l's leases once the response has ended: now, or
// when the upstream's body stream is closed.
func (g *Gateway) releaseAfter(ctx *fasthttp.RequestCtx, l *lease) {
	if s, ok := ctx.Response.BodyStream().(upstream.Streamed); ok {
		s.AfterClose(g.releaser(l))
		return
	}
	g.limiter.Release(l.req, &l.v)
}

// releaser is a func that gives back l's leases, for later.
func (g *Gateway) releaser(l *lease) func() {
	return func() { g.limiter.Release(l.req, &l.v) }
}

// renewEvery is how often a tunnel renews l's leases: a third of their
// shortest window; 0 when it holds none.
func (l *lease) renewEvery() time.Duration {
	var every time.Duration
	for _, r := range l.req.Rules {
		if r.Lease && (every == 0 || r.Window/3 < every) {
			every = r.Window / 3
		}
	}
	return every
}

// renewing renews l's leases every renewEvery until done closes: a tunnel
// holds them while it is open, however long past their window.
func (g *Gateway) renewing(l *lease, done <-chan struct{}) {
	every := l.renewEvery()
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			g.limiter.Renew(l.req, &l.v)
		}
	}
}
