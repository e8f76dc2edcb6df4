package gateway

import (
	"encoding/json"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/tenants"
)

// Admin is the admin listener's API: /healthz, /readyz, /metrics and /v1/*.
type Admin struct {
	ready      atomic.Bool
	tenants    *tenants.Table
	store      string
	configJSON []byte
	router     *router.Router
}

// NewAdmin returns the admin API. config is what GET /v1/config shows (the
// effective config, secrets already redacted); store names the limiter's
// store in /readyz.
func NewAdmin(t *tenants.Table, store string, config any) (*Admin, error) {
	b, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return nil, err
	}
	a := &Admin{tenants: t, store: store, configJSON: append(b, '\n')}
	r := router.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleOPTIONS = false
	r.GET("/healthz", a.healthz)
	r.GET("/readyz", a.readyz)
	r.GET("/metrics", func(ctx *fasthttp.RequestCtx) { metrics.WritePrometheus(ctx, true) })
	r.GET("/v1/config", a.config)
	a.router = r
	return a, nil
}

// Handler serves the admin API.
func (a *Admin) Handler() fasthttp.RequestHandler { return a.router.Handler }

// SetReady marks the gateway ready (listeners up) or not (shutting down).
func (a *Admin) SetReady(v bool) { a.ready.Store(v) }

func (a *Admin) healthz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("ok\n")
}

type readiness struct {
	Status  string `json:"status"`
	Store   string `json:"store"`
	Tenants int    `json:"tenants"`
}

func (a *Admin) readyz(ctx *fasthttp.RequestCtx) {
	r := readiness{Status: "ready", Store: a.store, Tenants: a.tenants.Load().Len()}
	if !a.ready.Load() {
		r.Status = "not ready"
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	writeJSON(ctx, r)
}

func (a *Admin) config(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBody(a.configJSON)
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(v) // plain structs: cannot fail
	ctx.SetBody(append(b, '\n'))
}
