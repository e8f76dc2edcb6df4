package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// upstreamBody is what the in-process upstream answers: small and fixed, so
// the measurements are the proxies' and not the upstream's.
var upstreamBody = []byte("hello from the l1gw bench-compare upstream\n")

// upstream is the in-process fasthttp server every system forwards to.
type upstream struct {
	addr   string // 127.0.0.1:port
	server *fasthttp.Server
	done   chan error
}

// startUpstream listens on a free loopback port and serves until stop.
func startUpstream() (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstream listen: %w", err)
	}
	s := &fasthttp.Server{
		Handler:               upstreamHandler,
		ReadTimeout:           5 * time.Second,
		WriteTimeout:          5 * time.Second,
		IdleTimeout:           time.Minute,
		MaxRequestBodySize:    1 << 20,
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
	}
	u := &upstream{addr: ln.Addr().String(), server: s, done: make(chan error, 1)}
	go func() { u.done <- s.Serve(ln) }()
	return u, nil
}

// stop shuts the server down, waiting at most a few seconds.
func (u *upstream) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = u.server.ShutdownWithContext(ctx)
	select {
	case <-u.done:
	case <-time.After(5 * time.Second):
	}
}

// upstreamHandler answers 200 with the fixed body ("ok" on /healthz, the
// gateway's health check).
func upstreamHandler(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; charset=utf-8")
	if string(ctx.Path()) == "/healthz" {
		ctx.SetBodyString("ok\n")
		return
	}
	ctx.SetBody(upstreamBody)
}
