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
// it came with (nil for an anonymous caller); and where it was sent: the
// host and path its request was routed by, the upstream it went to, and
// that upstream's target it is connected to.
type tunnelOwner struct {
	tenant     string
	key        []byte
	host, path []byte
	upstream   string
	target     string
}

// ownerOf is the owner of a's request, an upgrade about to be tunnelled.
func (g *Gateway) ownerOf(ctx *fasthttp.RequestCtx, a *admission) tunnelOwner {
	o := tunnelOwner{tenant: a.tenant.ID, upstream: a.pool.Name,
		host: bytes.Clone(ctx.URI().Host()), path: bytes.Clone(ctx.Path())}
	if !a.tenant.Anonymous() {
		if id, _, ok := g.identify(ctx, g.tenants.Load(), &a.keyBuf); ok {
			o.key = bytes.Clone(id.key)
		}
	}
	return o
}

// inForce reports whether snap and the routes in force still admit o
// and send it where it went: its key resolves to its tenant (an
// anonymous caller's, that callers are still let in), and its request
// is routed to its upstream, as admit routes one: by its route, or by
// its tenant's upstream, which still has its target.
func (g *Gateway) inForce(o tunnelOwner, snap *tenants.Snapshot) bool {
	t, _ := snap.Peek(o.key)
	if t == nil || t.ID != o.tenant {
		return false
	}
	rt := g.proxy.Match(o.host, o.path)
	if rt == nil {
		return false
	}
	p := g.poolOf(rt, t)
	return p.Name == o.upstream && p.HasTarget(o.target)
}

// tunnelCheck is how often an open tunnel looks whether a config or
// registry change took away its tenant, its key or its upstream, or its
// key expired.
const tunnelCheck = time.Second

// watch runs beside an open tunnel until done closes: it ends the tunnel
// once the tenants and routes in force no longer admit its owner or no
// longer send it to its upstream (the tenant removed, its key revoked,
// its upstream or its target removed, or its request routed elsewhere:
// looked at on its first tick, and whenever the tenants or the routes
// change; its key expired: looked at on every tick), and renews l's
// leases, if l is not nil, every renewEvery, so that the tunnel holds
// them while it is open, however long past their window.
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
	var routes uint64     // the proxy's Generation looked at with snap
	var expires time.Time // when the owner's key expires under snap; zero: never
	for {
		select {
		case <-done:
			return
		case now := <-check.C:
			if s, gen := g.tenants.Load(), g.proxy.Generation(); s != snap || gen != routes {
				snap, routes = s, gen
				if !g.inForce(owner, s) {
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
