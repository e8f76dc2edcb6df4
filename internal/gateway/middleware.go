package gateway

import (
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// middleware wraps a handler; the chain is built once at start-up.
type middleware func(fasthttp.RequestHandler) fasthttp.RequestHandler

// chain applies mws so that the first is outermost.
func chain(h fasthttp.RequestHandler, mws ...middleware) fasthttp.RequestHandler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// The gateway's metrics of its own (the decisions' are tenants.Stats').
var (
	panicsTotal     = metrics.NewCounter(`l1gw_panics_total`)
	requestDuration = metrics.NewHistogram(`l1gw_request_duration_seconds`)
	// decisionDuration is how long each request that reached the limiter
	// waited for its decision: the part of requestDuration that is l1gw's
	// own limiting, apart from the upstream.
	decisionDuration = metrics.NewHistogram(`l1gw_decision_duration_seconds`)
	malformedTotal   = metrics.NewCounter(`l1gw_malformed_requests_total`)
)

// Handler is g's request path as the proxy listener serves it: panics
// recovered (500, logged, counted), durations measured.
func (g *Gateway) Handler(log *slog.Logger) fasthttp.RequestHandler {
	return chain(g.Serve, recoverer(log), timed)
}

// ExpectHandler is g's Expect as the proxy server calls it, with panics
// recovered (500) like the request path's.
func (g *Gateway) ExpectHandler(log *slog.Logger) func(*fasthttp.RequestCtx) int {
	rec := recoverer(log)
	return func(ctx *fasthttp.RequestCtx) int {
		status := fasthttp.StatusInternalServerError
		rec(func(ctx *fasthttp.RequestCtx) { status = g.Expect(ctx) })(ctx)
		return status
	}
}

// Recover wraps another listener's handler (the admin API) in the same
// recoverer.
func Recover(h fasthttp.RequestHandler, log *slog.Logger) fasthttp.RequestHandler {
	return chain(h, recoverer(log))
}

// ServerError is fasthttp's ErrorHandler for the proxy listener: a
// request it could not parse or that broke a size limit gets a
// problem+json answer.
func ServerError(ctx *fasthttp.RequestCtx, err error) { serverError(ctx, err, problemBodySize) }

// AdminServerError is ServerError for the admin listener, whose body cap
// is its own: bodyCap names it in a 413.
func AdminServerError(bodyCap string) func(*fasthttp.RequestCtx, error) {
	p := problemBodySize
	p.detail = "the request body exceeds " + bodyCap
	return func(ctx *fasthttp.RequestCtx, err error) { serverError(ctx, err, p) }
}

// recoverer answers 500 and logs instead of letting a panic kill the
// process: fasthttp recovers nothing.
func recoverer(log *slog.Logger) middleware {
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			defer func() {
				if r := recover(); r != nil {
					panicsTotal.Inc()
					log.Error("panic serving request", "panic", r, "method", string(ctx.Method()),
						"path", string(ctx.Path()), "stack", string(debug.Stack()))
					ctx.Response.Reset()
					writeProblem(ctx, problemPanic)
					ctx.SetConnectionClose()
				}
			}()
			next(ctx)
		}
	}
}

// timed records every request's duration in l1gw_request_duration_seconds.
func timed(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		next(ctx)
		requestDuration.UpdateDuration(start)
	}
}

var (
	problemBadRequest = badRequest("the request is not valid HTTP/1.x")
	problemHeaderSize = problem{fasthttp.StatusRequestHeaderFieldsTooLarge, typeBlank, "Request Header Fields Too Large", "the request headers exceed server.max_header_bytes"}
	problemBodySize   = problem{fasthttp.StatusRequestEntityTooLarge, typeBlank, "Content Too Large", "the request body exceeds server.max_body_bytes"}
	problemTimeout    = problem{fasthttp.StatusRequestTimeout, typeBlank, "Request Timeout", "the request was not received within server.read_timeout"}
)

// serverError answers requests fasthttp could not parse: malformed → 400,
// oversized headers → 431, oversized body → 413, too slow → 408.
func serverError(ctx *fasthttp.RequestCtx, err error, bodySize problem) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	p := problemBadRequest
	switch {
	case errors.As(err, &small):
		p = problemHeaderSize
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		p = bodySize
	case errors.As(err, &ne) && ne.Timeout():
		p = problemTimeout
	}
	writeProblem(ctx, p)
	malformedTotal.Inc()
}
