package gateway

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
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

// tunnelOwner is who a tunnel was admitted as: its tenant, and the key
// it came with (nil for an anonymous caller).
type tunnelOwner struct {
	tenant string
	key    []byte
}

// ownerOf is the owner of a's request, an upgrade about to be tunnelled.
func (g *Gateway) ownerOf(ctx *fasthttp.RequestCtx, a *admission) tunnelOwner {
	o := tunnelOwner{tenant: a.tenant.ID}
	if !a.tenant.Anonymous() {
		if id, _, ok := g.identify(ctx, g.tenants.Load(), &a.keyBuf); ok {
			o.key = bytes.Clone(id.key)
		}
	}
	return o
}

// admitted reports whether snap still admits o: its key resolves to its
// tenant (an anonymous caller's, that callers are still let in).
func (o tunnelOwner) admitted(snap *tenants.Snapshot) bool {
	t, _ := snap.Peek(o.key)
	return t != nil && t.ID == o.tenant
}

// tunnelCheck is how often an open tunnel looks whether a config or
// registry change took away its tenant or its key, or its key expired.
const tunnelCheck = time.Second

// watch runs beside an open tunnel until done closes: it ends the tunnel
// once the tenants in force no longer admit its owner (the tenant
// removed, its key revoked: looked at on its first tick, and whenever
// the tenants change; its key expired: looked at on every tick), and
// renews l's leases, if l is not nil, every renewEvery, so that the
// tunnel holds them while it is open, however long past their window.
func (g *Gateway) watch(owner tunnelOwner, l *lease, done <-chan struct{}, end func()) {
	every := time.Duration(0)
	if l != nil {
		every = l.renewEvery()
	}
	tick := tunnelCheck
	if every > 0 {
		tick = max(min(tick, every), 10*time.Millisecond)
	}
	check := time.NewTicker(tick)
	defer check.Stop()
	renewAt := time.Now().Add(every)
	// None yet: the first tick looks, so that a change since the request
	// was admitted (during its decision, or the upgrade's handshake) is
	// seen.
	var snap *tenants.Snapshot
	var expires time.Time // when the owner's key expires under snap; zero: never
	for {
		select {
		case <-done:
			return
		case now := <-check.C:
			if s := g.tenants.Load(); s != snap {
				snap = s
				if !owner.admitted(s) {
					end()
					return
				}
				expires = s.Expires(owner.key)
			}
			// A key that expires is refused from then on with no change
			// to the tenants: its tunnel ends with it.
			if !expires.IsZero() && !now.Before(expires) {
				end()
				return
			}
			if every > 0 && !now.Before(renewAt) {
				g.limiter.Renew(l.req, &l.v)
				renewAt = now.Add(every)
			}
		}
	}
}
