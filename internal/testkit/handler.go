package testkit

import (
	"bufio"
	"net"
	"strings"

	"github.com/valyala/fasthttp"
)

// Handler serves one request, over and over, to a handler on a reused
// RequestCtx, as fasthttp's server would: the request path can be driven
// without a listener, and allocations measured per request.
type Handler struct {
	h    fasthttp.RequestHandler
	tmpl fasthttp.Request
	// Ctx holds the last request and its response.
	Ctx fasthttp.RequestCtx
}

// NewHandler returns a Handler of h for method and path on gw.test, with
// the API key in X-API-Key (none if key is ""), from 192.0.2.1. The
// request is read from its wire form, so that it holds its raw header
// block as a served one does.
func NewHandler(h fasthttp.RequestHandler, key, method, path string) *Handler {
	f := &Handler{h: h}
	wire := method + " " + path + " HTTP/1.1\r\nHost: gw.test\r\n"
	if key != "" {
		wire += "X-API-Key: " + key + "\r\n"
	}
	wire += "User-Agent: testkit\r\n\r\n"
	if err := f.tmpl.Read(bufio.NewReader(strings.NewReader(wire))); err != nil {
		panic("testkit: " + err.Error()) // a test's method or path fasthttp cannot read
	}
	f.Ctx.Init(&f.tmpl, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}, nil)
	return f
}

// Serve runs the request once and returns the response's status.
func (f *Handler) Serve() int {
	f.tmpl.CopyTo(&f.Ctx.Request)
	f.Ctx.Response.Reset()
	f.h(&f.Ctx)
	return f.Ctx.Response.StatusCode()
}
