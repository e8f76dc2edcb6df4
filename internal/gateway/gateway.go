// Package gateway is l1gw's request path: Gateway.Serve strings tenants,
// the limiter (through degrade) and upstream together, and writes the
// rate-limit headers and problem+json answers.
package gateway

import (
	"context"
	"errors"
	"log/slog"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// Decider is what the request path needs from degrade: *degrade.Guard.
type Decider interface {
	// Decide is degrade.Guard's.
	Decide(ctx context.Context, req limiter.Request) degrade.Verdict
}

// Gateway is the proxy's request handler.
type Gateway struct {
	tenants   *tenants.Table
	limiter   Decider
	proxy     *upstream.Proxy
	ids       *upstream.IDs
	keyHeader string
	hideKey   bool
	trust     bool
	unknown   *tenants.Stats
	log       *slog.Logger
}

// Parts are what a Gateway is built from.
type Parts struct {
	Tenants *tenants.Table
	Limiter Decider
	Proxy   *upstream.Proxy
	IDs     *upstream.IDs
	// TrustForwarded is server.trust_forwarded.
	TrustForwarded bool
	Log            *slog.Logger
}

// New returns the request handler over p. The key header and whether to
// hide keys come from the tenant snapshot's options.
func New(p Parts) *Gateway {
	o := p.Tenants.Load().Options()
	return &Gateway{
		tenants: p.Tenants, limiter: p.Limiter, proxy: p.Proxy, ids: p.IDs,
		keyHeader: o.KeyHeader, hideKey: o.HideKey, trust: p.TrustForwarded,
		unknown: tenants.NewStats(tenants.UnknownID), log: p.Log,
	}
}

var hdrAuthorization = []byte("Authorization")

// Serve is the request path of DESIGN.md, top to bottom: route, tenant,
// decision, forward, headers last.
func (g *Gateway) Serve(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	// The URI's host: the Host header, or the host of an absolute-form
	// request line, which is where fasthttp forwards to.
	pool := g.proxy.Route(ctx.URI().Host(), ctx.Path())
	if pool == nil {
		g.reject(ctx, problemNoRoute)
		return
	}
	auth := h.PeekBytes(hdrAuthorization)
	key := tenants.KeyFrom(h.Peek(g.keyHeader), auth)
	t, res := g.tenants.Load().Resolve(key)
	if t == nil {
		p := problemMissingKey
		if res == tenants.UnknownKey {
			p = problemUnknownKey
		}
		g.reject(ctx, p)
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="l1gw"`)
		return
	}
	// A copy: stripping and setting headers below may reuse the storage the
	// header's value lives in.
	var idBuf [128]byte
	reqID := append(idBuf[:0], g.ids.EnsureRequestID(h)...)
	rules := t.Rules(h.Method(), ctx.Path())
	v := g.limiter.Decide(context.Background(), limiter.Request{Tenant: g.limitKey(ctx, t), Rules: rules})
	countDecision(t.Stats, &v)
	switch {
	case v.Overloaded:
		writeProblem(ctx, problemOverload)
		ctx.Response.Header.SetCanonical(hdrRetryAfter, retryAfterOverload)
	case v.Refused:
		writeProblem(ctx, problemFailClosed)
	case !v.Allowed:
		writeProblemWith(ctx, problemQuota, rules, &v)
	default:
		if t.Upstream != "" {
			pool, _ = g.proxy.Pool(t.Upstream)
		}
		g.forward(ctx, pool, t, len(auth) > 0 && len(h.Peek(g.keyHeader)) == 0, reqID)
	}
	writeRateHeaders(&ctx.Response.Header, rules, &v)
	ctx.Response.Header.SetCanonical(hdrRequestID, reqID)
	t.Stats.Response(ctx.Response.StatusCode())
}

// limitKey is what the limiter counts under: the tenant, or for anonymous
// callers the client's address.
func (g *Gateway) limitKey(ctx *fasthttp.RequestCtx, t *tenants.Tenant) string {
	if !t.Anonymous() {
		return t.ID
	}
	return "anon:" + string(upstream.ClientIP(&ctx.Request.Header, ctx.RemoteIP(), g.trust))
}

// forward sends the request upstream and leaves its answer, or a problem
// for a failed forward, in ctx.Response.
func (g *Gateway) forward(ctx *fasthttp.RequestCtx, pool *upstream.Pool, t *tenants.Tenant, keyInAuth bool, reqID []byte) {
	h := &ctx.Request.Header
	closeAfter := h.ConnectionClose()
	upstream.StripRequestHopByHop(h)
	h.SetCanonical(hdrRequestID, reqID) // even if Connection named it
	if g.hideKey {
		h.Del(g.keyHeader)
		if keyInAuth {
			h.DelBytes(hdrAuthorization)
		}
	}
	h.Set(hdrTenant, t.ID) // replaces anything the client sent
	upstream.SetForwarded(h, upstream.Forwarded{ClientIP: ctx.RemoteIP(), TLS: ctx.IsTLS(), Trust: g.trust})

	if err := pool.Forward(&ctx.Request, &ctx.Response); err != nil {
		var ue *upstream.Error
		status := fasthttp.StatusBadGateway
		if errors.As(err, &ue) {
			status = ue.Status()
		}
		g.log.Warn("forward failed", "err", err.Error(), "upstream", pool.Name, "tenant", t.ID)
		writeProblem(ctx, upstreamProblem(status))
	} else {
		upstream.StripResponseHopByHop(&ctx.Response.Header)
	}
	if closeAfter {
		ctx.Response.SetConnectionClose()
	}
}

// reject answers a request that never reached the limiter.
func (g *Gateway) reject(ctx *fasthttp.RequestCtx, p problem) {
	writeProblem(ctx, p)
	g.unknown.Response(p.status)
}

// retryAfterOverload is the Retry-After of a shed request.
var retryAfterOverload = []byte("1")

func countDecision(s *tenants.Stats, v *degrade.Verdict) {
	switch {
	case v.Overloaded:
		s.Overloaded.Inc()
	case v.Degraded:
		s.Degraded.Inc()
	case v.Allowed:
		s.Allowed.Inc()
	default:
		s.Denied.Inc()
	}
}
