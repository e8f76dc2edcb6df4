package testkit

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// OK answers 200 "upstream ok".
func OK(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("upstream ok") }

// Serve runs h (nil: OK) on a loopback port until the test ends and
// returns its URL, http://127.0.0.1:port. It records nothing, so it
// allocates nothing of its own per request (the allocation guards).
func Serve(tb testing.TB, h fasthttp.RequestHandler) string {
	tb.Helper()
	if h == nil {
		h = OK
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	// Header blocks up to 64 KiB: past what the gateway forwards
	// (server.max_header_bytes, 16 KiB by default), so the test's upstream
	// never answers 431 to a request the gateway accepted. fasthttp's
	// default, 4 KiB, did: a fuzzed 4 KB Authorization came back 431.
	s := &fasthttp.Server{Handler: h, ReadBufferSize: 64 << 10}
	go s.Serve(ln) //nolint:errcheck // ends with Shutdown
	tb.Cleanup(func() { s.Shutdown() })
	return "http://" + ln.Addr().String()
}

// DeadURL is a loopback URL nothing listens on.
func DeadURL(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// Upstream is a loopback upstream that records every request it gets.
type Upstream struct {
	// URL is http://127.0.0.1:port.
	URL string
	mu  sync.Mutex
	req []*fasthttp.Request
}

// StartUpstream serves h (nil: OK) until the test ends, recording a copy
// of every request before h answers it.
func StartUpstream(tb testing.TB, h fasthttp.RequestHandler) *Upstream {
	tb.Helper()
	if h == nil {
		h = OK
	}
	u := &Upstream{}
	u.URL = Serve(tb, func(ctx *fasthttp.RequestCtx) {
		r := &fasthttp.Request{}
		ctx.Request.CopyTo(r)
		u.mu.Lock()
		u.req = append(u.req, r)
		u.mu.Unlock()
		h(ctx)
	})
	return u
}

// Last is the last request received; nil if none.
func (u *Upstream) Last() *fasthttp.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.req) == 0 {
		return nil
	}
	return u.req[len(u.req)-1]
}

// Count is how many requests it received.
func (u *Upstream) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.req)
}

// Answering is a raw upstream (Listen) that answers every request on a
// keep-alive connection with the bytes of answer, as they are: a response
// no well-behaved server would send, for one. It returns its address and
// the count of connections it accepted.
func Answering(tb testing.TB, answer string) (addr string, conns *atomic.Int64) {
	tb.Helper()
	conns = new(atomic.Int64)
	return Listen(tb, func(c net.Conn) {
		conns.Add(1)
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			if _, err := io.WriteString(c, answer); err != nil {
				return
			}
		}
	}), conns
}

// Listen accepts TCP connections on a loopback port until the test ends,
// handing each to handle on a goroutine of its own, and returns the
// address (127.0.0.1:port): a peer that speaks raw bytes.
func Listen(tb testing.TB, handle func(net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}

// ListenTLS serves h over TLS with the certificate in certFile and keyFile
// on a loopback port until the test ends, and returns 127.0.0.1:port.
func ListenTLS(tb testing.TB, certFile, keyFile string, h fasthttp.RequestHandler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &fasthttp.Server{Handler: h, ReadBufferSize: 64 << 10}
	go s.ServeTLS(ln, certFile, keyFile)
	tb.Cleanup(func() { s.Shutdown() })
	return ln.Addr().String()
}
