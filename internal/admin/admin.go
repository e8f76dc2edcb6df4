// Package admin is l1gw's admin API, on its own listener: health,
// readiness and metrics; behind a bearer token, the effective config, the
// tenants' usage and reset, and (server.pprof) the Go profiler.
package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"github.com/valyala/fasthttp/pprofhandler"

	"github.com/l1gw/l1gw/internal/registry"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// openAPI is the OpenAPI 3.1 document of this API, served at
// /v1/openapi.json; TestOpenAPI holds every route and status to it.
//
//go:embed openapi.json
var openAPI []byte

// Admin is the admin listener's API: /healthz, /readyz, /metrics and /v1/*.
type Admin struct {
	ready      atomic.Bool
	tenants    *tenants.Table
	store      string
	limits     Limits
	breaker    func() string
	sentinels  func() int             // nil outside Sentinel mode
	token      atomic.Pointer[bearer] // server.admin_token, or its file's content
	log        *slog.Logger
	curConfig  func() any
	reloader   func(trigger string) ReloadResult // nil without a reload
	lastReload func() *ReloadResult              // nil without a reload
	registry   *registry.Registry                // nil unless tenants.source is redis or both
	file       func() FileView
	regStatus  func() *RegistryStatus // nil without a registry
	proxy      *upstream.Proxy        // nil: /v1/simulate without shared limits
	router     *router.Router
}

// Limits is what the admin API needs from the store.
type Limits interface {
	Usage(ctx context.Context, tenant string, rules []limiter.Rule) ([]limiter.RuleUsage, error)
	Reset(ctx context.Context, tenant string, rules []limiter.Rule) error
}

// Parts are what the admin API is built from.
type Parts struct {
	Tenants *tenants.Table
	// StoreName names the limiter's store in /readyz.
	StoreName string
	// Limits reads and resets tenants' usage.
	Limits Limits
	// Breaker reports the store breaker's state for /readyz.
	Breaker func() string
	// Sentinels, if not nil, reports how many sentinels answered lately,
	// for /readyz.
	Sentinels func() int
	// Token is server.admin_token: /v1/* and /debug/pprof/* need it as a
	// bearer token; empty refuses them.
	Token string
	// Pprof is server.pprof: serve /debug/pprof/* (behind the token).
	Pprof bool
	// Config returns what GET /v1/config shows: the effective config with
	// its secrets already redacted.
	Config func() any
	// Log receives the audit line of every write (nil: none).
	Log *slog.Logger
	// Reload, if not nil, re-reads the config (POST /v1/reload), and
	// LastReload returns the last reload's result (nil before any) for
	// /readyz.
	Reload     func(trigger string) ReloadResult
	LastReload func() *ReloadResult
	// Registry, if not nil, is the tenant registry the tenant, plan and
	// key routes write; File is the config file in force, which their
	// writes are checked against; RegistryStatus is the registry copy's
	// state for /readyz.
	Registry       *registry.Registry
	File           func() FileView
	RegistryStatus func() *RegistryStatus
	// Proxy, if not nil, is the routing table whose routes' and
	// upstreams' shared limits /v1/simulate counts too.
	Proxy *upstream.Proxy
}

// New returns the admin API.
func New(p Parts) (*Admin, error) {
	if _, err := configJSON(p.Config()); err != nil {
		return nil, err
	}
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Admin{tenants: p.Tenants, store: p.StoreName, limits: p.Limits, breaker: p.Breaker, sentinels: p.Sentinels, log: log, proxy: p.Proxy,
		curConfig: p.Config, reloader: p.Reload, lastReload: p.LastReload, registry: p.Registry, file: p.File}
	if p.Registry != nil {
		a.regStatus = p.RegistryStatus
	}
	a.SetToken(p.Token)
	r := router.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleOPTIONS = false
	r.MethodNotAllowed = methodNotAllowed
	r.NotFound = notFound
	r.GET("/healthz", a.healthz)
	r.GET("/readyz", a.readyz)
	r.GET("/metrics", func(ctx *fasthttp.RequestCtx) { metrics.WritePrometheus(ctx, true) })
	r.GET("/v1/openapi.json", a.authorized(func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(openAPI)
	}))
	r.GET("/v1/config", a.authorized(a.config))
	r.GET("/v1/tenants", a.authorized(a.listTenants))
	r.GET("/v1/tenants/{id}", a.authorized(a.getTenant))
	r.PUT("/v1/tenants/{id}", a.authorized(a.putTenant))
	r.DELETE("/v1/tenants/{id}", a.authorized(a.deleteTenant))
	r.GET("/v1/plans", a.authorized(a.listPlans))
	r.GET("/v1/plans/{name}", a.authorized(a.getPlan))
	r.PUT("/v1/plans/{name}", a.authorized(a.putPlan))
	r.DELETE("/v1/plans/{name}", a.authorized(a.deletePlan))
	r.POST("/v1/tenants/{id}/keys", a.authorized(a.issueKey))
	r.GET("/v1/tenants/{id}/keys", a.authorized(a.listKeys))
	r.DELETE("/v1/tenants/{id}/keys/{key_id}", a.authorized(a.revokeKey))
	r.GET("/v1/tenants/{id}/usage", a.authorized(a.usage))
	r.POST("/v1/tenants/{id}/reset", a.authorized(a.reset))
	r.POST("/v1/simulate", a.authorized(a.simulate))
	if p.Reload != nil {
		r.POST("/v1/reload", a.authorized(a.reload))
	}
	if p.Pprof {
		r.GET("/debug/pprof/{profile:*}", a.authorized(pprofhandler.PprofHandler))
		// The index: fasthttp's handler answers 404 to a path ending in /.
		r.GET("/debug/pprof/", a.authorized(fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Index)))
	}
	a.router = r
	return a, nil
}

// Handler serves the admin API. Every GET answers HEAD too (RFC 9110
// §9.3.2): routed as the GET, and fasthttp sends the answer's fields
// without its body. The profiler's are the exception: a HEAD would run a
// 30 s profile, or a GC, for an answer nobody reads.
func (a *Admin) Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsHead() || isPprof(ctx.Path()) {
			a.router.Handler(ctx)
			return
		}
		ctx.Request.Header.SetMethod(fasthttp.MethodGet)
		// Put back even after a panic: fasthttp leaves out the body of a
		// HEAD's answer, the recoverer's 500 too, by the request's method.
		defer ctx.Request.Header.SetMethod(fasthttp.MethodHead)
		a.router.Handler(ctx)
	}
}

// isPprof: the path is the profiler's.
func isPprof(path []byte) bool { return bytes.HasPrefix(path, []byte("/debug/pprof/")) }

// methodNotAllowed is the router's 405, with an Allow that names what is
// served: HEAD beside GET, as Handler serves it (not on the profiler's
// paths), and not OPTIONS, which the router always adds but is not served
// here.
func methodNotAllowed(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	allow := slices.DeleteFunc(strings.Split(string(h.Peek(fasthttp.HeaderAllow)), ", "), func(m string) bool {
		return m == fasthttp.MethodOptions
	})
	if slices.Contains(allow, fasthttp.MethodGet) && !isPprof(ctx.Path()) {
		allow = append(allow, fasthttp.MethodHead)
		slices.Sort(allow)
	}
	h.Set(fasthttp.HeaderAllow, strings.Join(allow, ", "))
	writeProblem(ctx, problem{"about:blank", "Method Not Allowed", fasthttp.StatusMethodNotAllowed,
		"this path takes " + strings.Join(allow, ", ")})
}

// notFound answers a path the admin API does not have, as its other
// errors are: problem+json.
func notFound(ctx *fasthttp.RequestCtx) {
	writeProblem(ctx, problem{"about:blank", "Not Found", fasthttp.StatusNotFound,
		"the admin API has no such path: GET /v1/openapi.json lists them"})
}

// SetReady marks the gateway ready (listeners up) or not (shutting down).
func (a *Admin) SetReady(v bool) { a.ready.Store(v) }

func (a *Admin) healthz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("ok\n")
}

// Readiness is the body of /readyz.
type Readiness struct {
	Status  string `json:"status"`
	Store   string `json:"store"`
	Breaker string `json:"breaker"`
	Tenants int    `json:"tenants"`
	// Sentinels is how many sentinels answered the gateway's last round
	// (Sentinel mode only): 0 means decisions go to the last primary they
	// named, checked by ROLE.
	Sentinels *int `json:"sentinels_reachable,omitempty"`
	// Reload is the last config reload's result, if there was one, without
	// its error text. A refused reload leaves the gateway ready: the old
	// config serves.
	Reload *ReloadResult `json:"last_reload,omitempty"`
	// Registry is the tenant registry copy's state (tenants.source redis
	// or both).
	Registry *RegistryStatus `json:"registry,omitempty"`
}

// RegistryStatus is the state of a gateway's copy of the tenant registry.
type RegistryStatus struct {
	// Version is the registry version in force; -1 before the first read.
	Version int64 `json:"version"`
	// AgeSeconds is how long ago the copy was last found current; -1
	// before it ever was.
	AgeSeconds float64 `json:"age_seconds"`
	// Conflicts and Invalid count the entries left out; Problems names
	// (some of) them, without details (in the log), to a caller with the
	// admin token only.
	Conflicts int            `json:"conflicts"`
	Invalid   int            `json:"invalid"`
	Problems  []ProblemEntry `json:"problems,omitempty"`
}

// ProblemEntry names a registry entry left out of the snapshot.
type ProblemEntry struct {
	Kind   string `json:"kind"`
	Object string `json:"object"`
	Name   string `json:"name"`
}

// readyz is 200 while both listeners are up, degraded or not: a gateway
// serving by its fail mode is still serving. The breaker's state says
// whether decisions reach Redis.
func (a *Admin) readyz(ctx *fasthttp.RequestCtx) {
	r := Readiness{Status: "ready", Store: a.store, Breaker: a.breaker(), Tenants: a.tenants.Load().Len()}
	if a.sentinels != nil {
		n := a.sentinels()
		r.Sentinels = &n
	}
	if a.lastReload != nil {
		if last := a.lastReload(); last != nil {
			// /readyz needs no token: the error, which quotes the config's
			// values, is only in the log and the answer of /v1/reload.
			shown := *last
			shown.Error = ""
			r.Reload = &shown
		}
	}
	if a.regStatus != nil {
		// The body depends on the token: a cache must not hand one
		// caller's answer to another.
		ctx.Response.Header.Set(fasthttp.HeaderVary, fasthttp.HeaderAuthorization)
		r.Registry = a.regStatus()
		if r.Registry != nil && len(r.Registry.Problems) > 0 && !a.hasToken(ctx) {
			// /readyz needs no token: the entries' names (tenant ids,
			// plans) only with it; the counts say enough to a probe.
			shown := *r.Registry
			shown.Problems = nil
			r.Registry = &shown
		}
	}
	if !a.ready.Load() {
		r.Status = "not ready"
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	writeJSON(ctx, r)
}

func (a *Admin) config(ctx *fasthttp.RequestCtx) {
	b, err := configJSON(a.curConfig())
	if err == nil {
		b, err = indented(b)
	}
	if err != nil { // New walked the first config; a reload's may differ
		writeProblem(ctx, problem{"about:blank", "Internal Server Error", fasthttp.StatusInternalServerError,
			"the config could not be written as JSON: " + err.Error()})
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(v) // plain structs: cannot fail
	ctx.SetBody(append(b, '\n'))
}

// problem is an RFC 9457 body, as the proxy writes them.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func writeProblem(ctx *fasthttp.RequestCtx, p problem) {
	writeProblemBody(ctx, problemBody{problem: p})
}

func writeProblemBody(ctx *fasthttp.RequestCtx, p problemBody) {
	ctx.SetStatusCode(p.Status)
	ctx.SetContentType("application/problem+json")
	b, _ := json.Marshal(p) // strings and an int: cannot fail
	ctx.SetBody(append(b, '\n'))
}

var (
	problemNoToken   = problem{"about:blank", "Forbidden", fasthttp.StatusForbidden, "the admin API beyond health and metrics is off: server.admin_token is empty"}
	problemBadToken  = problem{"about:blank", "Unauthorized", fasthttp.StatusUnauthorized, "send Authorization: Bearer <server.admin_token>"}
	problemNoTenant  = problem{"about:blank", "Not Found", fasthttp.StatusNotFound, "no tenant has this id"}
	problemStoreDown = problem{"about:blank", "Service Unavailable", fasthttp.StatusServiceUnavailable, "the rate-limit store did not answer"}
)

// adminTimeout bounds one store call of the admin API.
const adminTimeout = 2 * time.Second

// bearer is the admin token and its ID.
type bearer struct {
	token []byte
	id    string
}

// SetToken makes token the admin token from now on (a rotated
// server.admin_token_file); "" turns the API beyond health off.
func (a *Admin) SetToken(token string) {
	a.token.Store(&bearer{token: []byte(token), id: tokenID(token)})
}

// tokenID names a token in audit lines: the first 8 hex digits of its
// SHA-256, enough to tell tokens apart, useless to guess one.
func tokenID(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// audit logs one write made through the API: who (the token's ID), what,
// on which tenant, and how it ended. Never a key or the token.
func (a *Admin) audit(ctx *fasthttp.RequestCtx, action, tenant string, status int, more ...any) {
	id, _ := ctx.UserValue(tokenIDKey).(string) // the token the caller sent, whatever it is now
	attrs := append([]any{"token_id", id, "action", action, "tenant", tenant, "status", status,
		"remote", ctx.RemoteIP().String()}, more...)
	a.log.Info("audit", attrs...)
}

// tokenIDKey is the user value under which authorized leaves the ID of
// the token a request carried, for its audit line.
const tokenIDKey = "l1gw.admin.token_id"

// authorized lets a request through with the bearer admin token.
func (a *Admin) authorized(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		// Loaded once, for the check and the audit line: a rotation
		// between two loads would judge by one token and log another.
		b := a.token.Load()
		if len(b.token) == 0 {
			writeProblem(ctx, problemNoToken)
			return
		}
		if !carries(ctx, b.token) {
			writeProblem(ctx, problemBadToken)
			ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="l1gw-admin"`)
			return
		}
		ctx.SetUserValue(tokenIDKey, b.id)
		next(ctx)
	}
}

// hasToken reports whether ctx carries the admin token (false while none
// is set).
func (a *Admin) hasToken(ctx *fasthttp.RequestCtx) bool { return carries(ctx, a.token.Load().token) }

// carries reports whether ctx's bearer is want, in constant time (false
// for an empty want).
func carries(ctx *fasthttp.RequestCtx, want []byte) bool {
	got := tenants.KeyFrom(nil, ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	return len(want) > 0 && subtle.ConstantTimeCompare(got, want) == 1
}

func (a *Admin) tenant(ctx *fasthttp.RequestCtx) (*tenants.Tenant, bool) {
	id, _ := ctx.UserValue("id").(string)
	t, ok := a.tenants.Load().ByID(id)
	if !ok {
		writeProblem(ctx, problemNoTenant)
	}
	return t, ok
}

// RuleUsage is one rule in the body of GET /v1/tenants/{id}/usage.
type RuleUsage struct {
	Name  string `json:"name"`
	Limit int64  `json:"limit"`
	// Window is the rule's window; "" (absent) for a fixed rule.
	Window       string  `json:"window,omitempty"`
	Used         int64   `json:"used"`
	Remaining    int64   `json:"remaining"`
	ResetSeconds float64 `json:"reset_seconds"`
	// Mode is "shadow" for a shadow rule (its own count, never denying);
	// absent for an enforced one.
	Mode string `json:"mode,omitempty"`
	// Algorithm is the rule's when not the sliding log; Period a fixed
	// rule's.
	Algorithm string `json:"algorithm,omitempty"`
	Period    string `json:"period,omitempty"`
}

// ruleUsage is u as the API shows it.
func ruleUsage(u limiter.RuleUsage) RuleUsage {
	r := RuleUsage{Name: u.Rule.Name, Limit: u.Rule.Limit, Window: u.Rule.Window.String(),
		Used: u.Used, Remaining: u.Remaining(), ResetSeconds: u.Reset.Seconds()}
	if u.Rule.Shadow() {
		r.Mode = limiter.RuleShadow
	}
	if u.Rule.Counted() {
		r.Algorithm, r.Period = u.Rule.Algorithm, u.Rule.Period
	}
	if u.Rule.Algorithm == limiter.AlgoFixed {
		r.Window = ""
	}
	return r
}

// usage answers each rule's limit, used, remaining and reset, read from
// the replica (the memory store's own state in memory mode).
func (a *Admin) usage(ctx *fasthttp.RequestCtx) {
	t, ok := a.tenant(ctx)
	if !ok {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	us, err := a.limits.Usage(c, t.ID, t.AllRules())
	if err != nil {
		writeProblem(ctx, problemStoreDown)
		return
	}
	out := struct {
		Tenant string      `json:"tenant"`
		Rules  []RuleUsage `json:"rules"`
	}{Tenant: t.ID, Rules: make([]RuleUsage, len(us))}
	for i, u := range us {
		out.Rules[i] = ruleUsage(u)
	}
	writeJSON(ctx, out)
}

// reset forgets what the tenant has used, in the store and the deny cache.
func (a *Admin) reset(ctx *fasthttp.RequestCtx) {
	t, ok := a.tenant(ctx)
	if !ok {
		id, _ := ctx.UserValue("id").(string)
		a.audit(ctx, "reset", id, ctx.Response.StatusCode())
		return
	}
	c, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := a.limits.Reset(c, t.ID, t.AllRules()); err != nil {
		writeProblem(ctx, problemStoreDown)
		a.audit(ctx, "reset", t.ID, ctx.Response.StatusCode())
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	a.audit(ctx, "reset", t.ID, fasthttp.StatusNoContent)
}
