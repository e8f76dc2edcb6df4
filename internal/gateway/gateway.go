// Package gateway is l1gw's request path: Gateway.Serve strings tenants,
// the limiter (through degrade) and upstream together, and writes the
// rate-limit headers and problem+json answers.
package gateway

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/internal/logsample"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// Decider is what the request path needs from degrade: *degrade.Guard.
type Decider interface {
	// Decide is degrade.Guard's: it puts the verdict on req in v.
	Decide(ctx context.Context, req limiter.Request, v *degrade.Verdict)
	// Release is degrade.Guard's: it gives back the leases of an admitted
	// request's concurrency limits.
	Release(req limiter.Request, v *degrade.Verdict)
	// Renew is degrade.Guard's: it keeps those leases in their windows.
	Renew(req limiter.Request, v *degrade.Verdict)
}

// Gateway is the proxy's request handler.
type Gateway struct {
	tenants   *tenants.Table
	limiter   Decider
	proxy     *upstream.Proxy
	ids       *upstream.IDs
	keyHeader string
	// keyQuery is tenants.key_query; "" reads no key from the query.
	keyQuery string
	// basicAuth is tenants.key_basic_auth.
	basicAuth bool
	hideKey   bool
	// missingKey answers a request without a key; challenge is its
	// WWW-Authenticate.
	missingKey problem
	challenge  string
	// keyName is keyHeader, to find it spelt with '_' for '-' or the
	// other way round, which CGI-style upstreams read as keyHeader: a
	// request carrying such a field gets keyUnderscoreProblem.
	// keyUnderscored: keyHeader itself has a '_', so a request may spell
	// it otherwise with '-' alone.
	keyName              []byte
	keyUnderscored       bool
	keyUnderscoreProblem problem
	trusted              *upstream.Trusted
	maxBody              int
	// tunnelLimits bound upgraded connections; tunnelProtocols are its
	// Protocols as bytes.
	tunnelLimits    TunnelLimits
	tunnelProtocols [][]byte
	// tunnels are the open ones, for shutdown.
	tunnels tunnelSet
	// writeTimeout is renewed at each chunk of a streamed response.
	writeTimeout time.Duration
	unknown      *tenants.Stats
	log          *slog.Logger
	// upLog lets through one line a second of the upstream failures a
	// client can cause at its request rate.
	upLog *logsample.Every
}

// DefaultMaxBodyBytes is the body cap of Parts without one: the default of
// server.max_body_bytes.
const DefaultMaxBodyBytes = 10 << 20

// Parts are what a Gateway is built from.
type Parts struct {
	Tenants *tenants.Table
	Limiter Decider
	Proxy   *upstream.Proxy
	IDs     *upstream.IDs
	// Trusted are server.trusted_proxies: peers whose X-Forwarded-* are
	// believed. Nil trusts nobody.
	Trusted *upstream.Trusted
	// MaxBodyBytes is server.max_body_bytes: a request declaring more is
	// refused (413) before a byte of its body is read; 0 is
	// DefaultMaxBodyBytes.
	MaxBodyBytes int
	// Tunnel bounds upgraded connections; zero fields are
	// DefaultTunnelLimits'.
	Tunnel TunnelLimits
	// WriteTimeout is server.write_timeout: a streamed response renews it
	// at each chunk. 0 leaves fasthttp's single deadline.
	WriteTimeout time.Duration
	Log          *slog.Logger
}

// New returns the request handler over p. Where keys are read from and
// whether to hide them come from the tenant snapshot's options.
func New(p Parts) *Gateway {
	o := p.Tenants.Load().Options()
	if p.MaxBodyBytes <= 0 {
		p.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if p.Tunnel.Idle <= 0 {
		p.Tunnel.Idle = DefaultTunnelLimits.Idle
	}
	if p.Tunnel.Max <= 0 {
		p.Tunnel.Max = DefaultTunnelLimits.Max
	}
	if p.Tunnel.Protocols == nil {
		p.Tunnel.Protocols = DefaultTunnelLimits.Protocols
	}
	protocols := make([][]byte, len(p.Tunnel.Protocols))
	for i, name := range p.Tunnel.Protocols {
		protocols[i] = []byte(name)
	}
	challenge := `Bearer realm="l1gw"`
	if o.KeyBasicAuth {
		challenge += `, Basic realm="l1gw"`
	}
	return &Gateway{
		tenants: p.Tenants, limiter: p.Limiter, proxy: p.Proxy, ids: p.IDs,
		keyHeader: o.KeyHeader, keyQuery: o.KeyQuery, basicAuth: o.KeyBasicAuth, hideKey: o.HideKey,
		missingKey: missingKey(o), challenge: challenge,
		keyName: []byte(o.KeyHeader), keyUnderscored: strings.Contains(o.KeyHeader, "_"), keyUnderscoreProblem: keyUnderscoreProblem(o.KeyHeader),
		trusted: p.Trusted, maxBody: p.MaxBodyBytes, tunnelLimits: p.Tunnel, tunnelProtocols: protocols, writeTimeout: p.WriteTimeout,
		unknown: tenants.NewStats(tenants.UnknownID), log: p.Log, upLog: logsample.New(time.Second),
	}
}

var hdrAuthorization = []byte("Authorization")

// admission is what the request path decided on the headers alone: the
// tenant, its rules and the verdict, the upstream, the request ID. It is
// decided before any body byte is read (Expect) or before the body is
// forwarded (Serve). It comes from admissions and goes back (put) when
// Serve returns, when Expect refuses, or in Close, so nothing may keep it
// past that: what outlives the handler (a streamed body's lease release,
// a tunnel) takes a copy (lease).
type admission struct {
	pool     *upstream.Pool
	tenant   *tenants.Tenant
	rules    []limiter.Rule
	limitKey string // what the limiter counted under
	v        degrade.Verdict
	// keyIn are the places that carried the key, to hide it from.
	keyIn keyPlaces
	// sent are the fields prepare rewrites that the client sent.
	sent sentFields
	// idLen is the request ID's length in idBuf: a length, not a slice
	// into idBuf, so that a holds no pointer into itself.
	idLen int
	idBuf [128]byte
	// gw is the gateway of an admission Expect hands to Serve, for Close.
	gw *Gateway
	// keyBuf is identify's scratch: in the admission, which is reused,
	// because a fresh one is 2 KB to zero for every request. decodes says
	// it may hold a decoded key (the gateway reads keys from the query or
	// Basic credentials), for put to clear.
	keyBuf  keyScratch
	decodes bool
}

// Close gives back the leases of an admission Expect made for a request
// that never reached Serve (the client sent no body after "100
// Continue", so fasthttp gave up reading it): fasthttp closes the user
// values a request still holds when it resets it. Serve takes its
// admission out first, so Close runs only for the ones left behind.
func (a *admission) Close() error {
	if a.v.HoldsLeases() {
		a.gw.limiter.Release(limiter.Request{Tenant: a.limitKey, Rules: a.rules}, &a.v)
	}
	a.put()
	return nil
}

// put gives a back to admissions, reset.
func (a *admission) put() {
	a.reset()
	admissions.Put(a)
}

// reset drops what a refers to, and the key identify may have decoded
// into keyBuf. It leaves the rest as it is: admit sets every field before
// it reads it, and the rest (the key scratch and the verdict's rule
// states, most of a's 3.4 KB) is not worth zeroing for every request.
func (a *admission) reset() {
	a.pool, a.tenant, a.rules, a.limitKey, a.gw = nil, nil, nil, "", nil
	a.v.Reset()
	if a.decodes {
		clear(a.keyBuf[:]) // a key or password stays nowhere once decided on
		a.decodes = false
	}
}

// reqID is the request ID: a copy, as stripping and setting headers may
// reuse the storage the header's value lives in.
func (a *admission) reqID() []byte { return a.idBuf[:a.idLen] }

// admissions recycles the admissions of requests: Serve's, and those an
// Expect decides on and hands to Serve.
var admissions = sync.Pool{New: func() any { return new(admission) }}

// admittedKey is the user value under which Expect leaves its admission.
const admittedKey = "l1gw.admission"

// Expect is the proxy server's ExpectHandler: for a request with Expect:
// 100-continue it decides on the headers, before the client sends a body
// byte. It returns 100 (continue) only for an admitted request, which
// Serve then forwards without deciding again; otherwise the answer is in
// ctx.Response, and fasthttp sends it and closes the connection.
func (g *Gateway) Expect(ctx *fasthttp.RequestCtx) int {
	a := admissions.Get().(*admission)
	if !g.admit(ctx, a) {
		a.put()
		return ctx.Response.StatusCode()
	}
	a.gw = g
	ctx.SetUserValue(admittedKey, a)
	return fasthttp.StatusContinue
}

// Serve is the request path of docs/architecture.md, top to bottom: route,
// tenant, body size, decision, forward, headers last. The body, streamed,
// is read only by the forward: a request refused on its headers has its
// connection closed instead of its body read.
//
// The admission comes from a pool, not the stack: the limiter fills its
// verdict through an interface, which a stack variable would escape by.
func (g *Gateway) Serve(ctx *fasthttp.RequestCtx) {
	a, ok := ctx.UserValue(admittedKey).(*admission)
	if ok {
		ctx.RemoveUserValue(admittedKey)
	} else if a = admissions.Get().(*admission); !g.admit(ctx, a) {
		if hasBody(&ctx.Request.Header) {
			ctx.SetConnectionClose() // its body is still on the wire
		}
		a.put()
		return
	}
	g.serve(ctx, a)
	a.put()
}

// hasBody: the request declares a body: a length above 0, or chunked (-1).
// fasthttp's -2 (neither header) is no body for a request.
func hasBody(h *fasthttp.RequestHeader) bool {
	n := h.ContentLength()
	return n > 0 || n == -1
}

// admit routes, authenticates and decides on the headers. It returns true
// for a request to forward; otherwise the answer is in ctx.Response.
func (g *Gateway) admit(ctx *fasthttp.RequestCtx, a *admission) bool {
	h := &ctx.Request.Header
	if h.ContentLength() == -1 && smuggledLength(h.RawHeaders()) {
		// Content-Length beside chunked: fasthttp read it as chunked, but
		// something before it may not have (RFC 9112 §6.1). On the request
		// too: forward re-applies it after the upstream's answer.
		h.SetConnectionClose()
		ctx.SetConnectionClose()
	}
	if p, ok := checkRequestLine(ctx); !ok {
		g.reject(ctx, p)
		if p.status == fasthttp.StatusMethodNotAllowed {
			ctx.Response.Header.SetCanonical(hdrAllow, allowMethods)
		}
		return false
	}
	// The URI's host: the Host header, or the host of an absolute-form
	// request line, which is where fasthttp forwards to.
	rt := g.proxy.Match(ctx.URI().Host(), ctx.Path())
	if rt == nil {
		g.reject(ctx, problemNoRoute)
		return false
	}
	a.pool = rt.Pool
	if len(h.PeekAll(g.keyHeader)) > 1 || len(h.PeekAll(fasthttp.HeaderAuthorization)) > 1 {
		g.reject(ctx, problemAmbiguousKey)
		return false
	}
	snap := g.tenants.Load()
	a.decodes = g.keyQuery != "" || g.basicAuth
	id, p, ok := g.identify(ctx, snap, &a.keyBuf)
	if !ok {
		g.refuse(ctx, p)
		return false
	}
	t, res := snap.Resolve(id.key)
	if t == nil {
		p := g.missingKey
		if res == tenants.UnknownKey {
			p = problemUnknownKey
		}
		g.refuse(ctx, p)
		return false
	}
	a.tenant, a.keyIn = t, id.places
	// Looked up now, with the tenant: a config reload while the decision
	// waits may drop the upstream from the proxy's table.
	a.pool = g.poolOf(rt, t)
	a.sent = sentIn(h)
	g.requestID(h, a)
	var early *problem // refused before the limits count the request
	if a.sent&sentHopByHop != 0 {
		if early = hopByHopProblem(h); early != nil {
			ctx.SetConnectionClose() // where the body ends is in doubt
		}
	}
	var drop dropped
	if a.sent&(sentUnderscore|sentForwarded) != 0 {
		drop = droppedOf(a.sent, g.trusted.Peer(ctx.RemoteIP()))
	}
	switch {
	case early != nil:
	case a.sent&sentBadName != 0:
		early = &problemFieldName
	case drop.any && dropsTooMany(h, drop):
		early = &problemDroppedNames
	case (a.sent&sentUnderscore != 0 || g.keyUnderscored) && respelt(h, g.keyName):
		// A second key header in an upstream's eyes (X_API_Key is CGI's
		// HTTP_X_API_KEY): it could carry another tenant's key past the
		// limits, or the key past hide_key.
		early = &g.keyUnderscoreProblem
	case h.ContentLength() > g.maxBody:
		early = &problemBodySize // too large before a byte is read
	case t.MethodsMatter() && overriddenPast(ctx, t):
		early = &problemMethodOverride
	}
	if early != nil {
		writeProblem(ctx, *early)
		ctx.Response.Header.SetCanonical(hdrRequestID, a.reqID())
		t.Stats.Response(ctx.Response.StatusCode())
		return false
	}
	a.rules, a.limitKey = rt.Rules(t.Rules(h.Method(), ctx.Path()), a.pool, snap), g.limitKey(ctx, t)
	start := time.Now()
	g.limiter.Decide(context.Background(), limiter.Request{Tenant: a.limitKey, Rules: a.rules}, &a.v)
	decisionDuration.UpdateDuration(start)
	countDecision(t.Stats, &a.v)
	switch {
	case a.v.Overloaded:
		writeProblem(ctx, problemOverload)
		ctx.Response.Header.SetCanonical(hdrRetryAfter, retryAfterOverload)
	case a.v.Refused:
		writeProblem(ctx, problemFailClosed)
	case !a.v.Allowed:
		writeProblemWith(ctx, problemQuota, a.rules, &a.v)
	default:
		return true
	}
	g.finish(ctx, a)
	return false
}

// serve forwards an admitted request and finishes its answer.
func (g *Gateway) serve(ctx *fasthttp.RequestCtx, a *admission) {
	pool := a.pool
	if proto := upgradeOf(&ctx.Request.Header, g.tunnelProtocols); proto != nil {
		g.tunnel(ctx, pool, a, proto) // gives its leases back on a panic too
		return
	}
	// A panic before the leases are handed to releaseAfter (in forward,
	// finish) is answered 500 by the recoverer, which knows nothing of
	// them: given back here, or the tenant's slots stay taken until
	// their window (tenants.lease_ttl) ends. An open-coded defer, only
	// for a request that holds leases: no allocation.
	handedOver := false
	if a.v.HoldsLeases() {
		defer func() {
			if !handedOver {
				g.limiter.Release(limiter.Request{Tenant: a.limitKey, Rules: a.rules}, &a.v)
			}
		}()
	}
	g.forward(ctx, pool, a)
	g.finish(ctx, a)
	if a.v.HoldsLeases() {
		handedOver = true
		g.releaseAfter(ctx, a.lease())
	}
}

// requestID keeps the client's X-Request-Id or sets a new one, as
// upstream.IDs.EnsureRequestID does, and copies it into a. Without one
// sent (a.sent), it only sets it.
func (g *Gateway) requestID(h *fasthttp.RequestHeader, a *admission) {
	if a.sent&sentRequestID != 0 {
		a.idLen = copy(a.idBuf[:], g.ids.EnsureRequestID(h))
		return
	}
	a.idLen = copy(a.idBuf[:], g.ids.Append(a.idBuf[:0])) // in place, unless it outgrew idBuf
	h.SetCanonical(hdrRequestID, a.reqID())
}

// finish adds the rate-limit headers and the request ID to the answer and
// counts its status.
func (g *Gateway) finish(ctx *fasthttp.RequestCtx, a *admission) {
	writeRateHeaders(&ctx.Response.Header, a.rules, &a.v)
	// Every copy of the upstream's own goes: SetCanonical alone replaces
	// only the first, and a second would reach the client beside ours.
	ctx.Response.Header.DelBytes(hdrRequestID)
	ctx.Response.Header.SetCanonical(hdrRequestID, a.reqID())
	a.tenant.Stats.Response(ctx.Response.StatusCode())
}

// limitKey is what the limiter counts under: the tenant, or for anonymous
// callers the client's address (for IPv6, its network).
func (g *Gateway) limitKey(ctx *fasthttp.RequestCtx, t *tenants.Tenant) string {
	if !t.Anonymous() {
		return t.ID
	}
	return t.AnonymousKey(g.trusted.ClientIP(&ctx.Request.Header, ctx.RemoteIP()))
}

// poolOf is where a request routed by rt goes for tenant t: t's own
// upstream when it names one the proxy knows (among those the last reload
// dropped too: the tenants change after the routes, and until they do
// their upstreams are those of the config before), else the route's.
func (g *Gateway) poolOf(rt *upstream.Route, t *tenants.Tenant) *upstream.Pool {
	if t.Upstream != "" {
		if pool, ok := g.proxy.Pool(t.Upstream); ok {
			return pool
		}
	}
	return rt.Pool
}

// reject answers a request that never reached the limiter.
func (g *Gateway) reject(ctx *fasthttp.RequestCtx, p problem) {
	writeProblem(ctx, p)
	g.unknown.Response(p.status)
	// No keep-alive for a client that has not authenticated.
	ctx.SetConnectionClose()
}

// retryAfterOverload is the Retry-After of a shed request.
var retryAfterOverload = []byte("1")

// countDecision counts a verdict by its result, and once more as
// shadow_denied when a shadow rule would have denied the request.
func countDecision(s *tenants.Stats, v *degrade.Verdict) {
	if v.Decision.ShadowDenied() {
		s.ShadowDenied.Inc()
	}
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
