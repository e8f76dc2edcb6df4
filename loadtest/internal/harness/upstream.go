package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Upstream is an in-process fasthttp server on a free loopback port that
// answers 200 to everything: "ok" on /healthz (the gateway's health
// check), a small fixed body elsewhere, so the measurements are the
// proxy's and not the upstream's. POST /upload reads its body as it
// streams in and answers how many bytes it got; GET /download sends 1 GiB
// of zeros.
type Upstream struct {
	// Addr is 127.0.0.1:port.
	Addr   string
	server *fasthttp.Server
	done   chan error
}

// StartUpstream listens and serves body until Stop.
func StartUpstream(body string) (*Upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstream listen: %w", err)
	}
	b := []byte(body)
	s := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain; charset=utf-8")
			switch string(ctx.Path()) {
			case "/healthz":
				ctx.SetBodyString("ok\n")
				return
			case "/download":
				// 1 GiB of zeros, written as the client takes them.
				ctx.SetBodyStream(io.LimitReader(zeroReader{}, DownloadBytes), DownloadBytes)
				return
			case "/upload":
				// Read as it arrives and drop: the upload's bytes, counted.
				n, err := io.Copy(io.Discard, ctx.RequestBodyStream())
				ctx.SetBodyString(fmt.Sprintf("received %d bytes, %v", n, err))
				return
			}
			ctx.SetBody(b)
		},
		StreamRequestBody:            true,
		ReadTimeout:                  2 * time.Minute, // the upload scenario's 1 GiB
		DisablePreParseMultipartForm: true,
		WriteTimeout:                 5 * time.Second,
		IdleTimeout:                  time.Minute,
		MaxRequestBodySize:           1 << 20,
		NoDefaultServerHeader:        true,
		CloseOnShutdown:              true,
	}
	u := &Upstream{Addr: ln.Addr().String(), server: s, done: make(chan error, 1)}
	go func() { u.done <- s.Serve(ln) }()
	return u, nil
}

// DownloadBytes is the body of GET /download: 1 GiB.
const DownloadBytes = 1 << 30

// zeroReader reads as endless zero bytes.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Stop shuts the server down, waiting at most a few seconds.
func (u *Upstream) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = u.server.ShutdownWithContext(ctx)
	select {
	case <-u.done:
	case <-time.After(5 * time.Second):
	}
}
