package upstream_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/upstream"
)

// smuggle serves, on each connection, answers by the request's path:
// /extra a Content-Length shorter than what it sends, the rest (a whole
// second response) in a write of its own after it; /204 a 204, then a
// second response in a write of its own; HEAD a body in the same write;
// anything else "normal". sent gets a value once the extra bytes of a
// request are written.
func smuggle(c net.Conn, sent chan<- struct{}) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		const injected = "HTTP/1.1 200 OK\r\nX-Injected: yes\r\nContent-Length: 14\r\n\r\nsecret-of-A!!!"
		switch {
		case req.URL.Path == "/extra":
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
			time.Sleep(20 * time.Millisecond) // after the gateway has read the response
			c.Write([]byte(injected))
			sent <- struct{}{}
		case req.URL.Path == "/204":
			c.Write([]byte("HTTP/1.1 204 No Content\r\n\r\n"))
			c.Write([]byte(injected))
			sent <- struct{}{}
		case req.Method == "HEAD":
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n" + injected[len(injected)-14:] + injected))
			sent <- struct{}{}
		default:
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nnormal"))
		}
	}
}

// listenTLS serves handle on a loopback port over TLS with a certificate
// for 127.0.0.1 from ca, until the test ends.
func listenTLS(t *testing.T, ca *testkit.CA, handle func(net.Conn)) string {
	certFile, keyFile, _ := ca.Issue(t, "up", "127.0.0.1")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	return testkit.Listen(t, func(c net.Conn) { handle(tls.Server(c, cfg)) })
}

// TestNoResponseCrossesToTheNextRequest: bytes an upstream sends past the
// response it declared, in the same write or one of their own, never
// become the answer to the next request on that connection, which may be
// another tenant's: the connection is closed instead of reused. Over TLS
// too, where crypto/tls may have read them ahead of the socket.
func TestNoResponseCrossesToTheNextRequest(t *testing.T) {
	ca := testkit.NewCA(t)
	for _, scheme := range []string{"http", "https"} {
		for _, first := range []struct{ method, path string }{{"GET", "/extra"}, {"GET", "/204"}, {"HEAD", "/head"}} {
			t.Run(scheme+"/"+first.method+first.path, func(t *testing.T) {
				sent := make(chan struct{}, 1)
				handle := func(c net.Conn) { smuggle(c, sent) }
				s := spec("http://" + testkit.Listen(t, handle))
				if scheme == "https" {
					s = spec("https://" + listenTLS(t, ca, handle))
					s.TLS = upstream.TLSSpec{CAFile: ca.File}
				}
				s.MaxConnsPerTarget = 1 // one connection: the next request would reuse it
				pool := newProxy(t, s)
				req, resp := &fasthttp.Request{}, &fasthttp.Response{}
				req.SetRequestURI("http://example.test" + first.path)
				req.Header.SetMethod(first.method)
				if err := pool.Forward(req, resp); err != nil {
					t.Fatalf("%s %s: %v", first.method, first.path, err)
				}
				<-sent // the extra bytes are on their way, or in
				for i := range 3 {
					req, resp := &fasthttp.Request{}, &fasthttp.Response{}
					req.SetRequestURI("http://example.test/ok")
					if err := pool.Forward(req, resp); err != nil {
						t.Fatalf("GET /ok %d after %s %s: %v", i, first.method, first.path, err)
					}
					if body := string(resp.Body()); body != "normal" || len(resp.Header.Peek("X-Injected")) > 0 {
						t.Fatalf("GET /ok %d after %s %s: %q (X-Injected %q); want the upstream's answer to it, \"normal\"",
							i, first.method, first.path, body, resp.Header.Peek("X-Injected"))
					}
				}
			})
		}
	}
}

// TestAClosedIdleConnectionIsNotUsed: an upstream that closes its idle
// keep-alive connections (a shorter idle timeout than the pool's) costs a
// POST nothing: the pool sees the close before writing to it, where a
// POST, not retried, would fail.
func TestAClosedIdleConnectionIsNotUsed(t *testing.T) {
	closed := make(chan struct{}, 1)
	addr := testkit.Listen(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err == nil {
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		}
		c.Close() // no second request on this connection
		closed <- struct{}{}
	})
	s := spec("http://" + addr)
	s.MaxConnsPerTarget, s.Retries = 1, 0
	pool := newProxy(t, s)
	for i := range 3 {
		if _, err := do(pool, "POST"); err != nil {
			t.Fatalf("POST %d: %v; want each on a connection that is open", i, err)
		}
		<-closed
	}
}

// TestPooledConnectionOutlivesItsReadDeadline: a connection that rested
// longer than the upstream's timeout, past the read deadline its last
// request left on it, is still reused: the look before a request is not
// fooled by the stale deadline into taking it for closed.
func TestPooledConnectionOutlivesItsReadDeadline(t *testing.T) {
	addr, dials := testkit.Answering(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	s := spec("http://" + addr)
	s.Timeout, s.MaxConnsPerTarget = 100*time.Millisecond, 1
	pool := newProxy(t, s)
	for i := range 3 {
		if _, err := do(pool, "GET"); err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
		time.Sleep(150 * time.Millisecond) // rest past the timeout: the scenario, not a wait for a condition
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d connections for 3 requests on one resting connection; want 1", n)
	}
}

// TestChunkedBodyThatDoesNotDecodeIs502: a chunked body whose first chunk
// size does not parse fails the forward (502), before any of the answer
// is committed, rather than the client getting a head and then nothing.
// One that decodes streams whole, an empty one included.
func TestChunkedBodyThatDoesNotDecodeIs502(t *testing.T) {
	for _, tc := range []struct {
		body, want string
		fails      bool
	}{
		{"zz\r\nhello\r\n0\r\n\r\n", "", true},
		{"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n", "", true},
		{"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", false},
		{"5;ext=1 \r\nhello\r\n0\r\n\r\n", "hello", false},
		{"5 ;x\r\nhello\r\n0\r\n\r\n", "", true}, // a space before ';': net/http's reader refuses it too
		{"5\nhello\r\n0\r\n\r\n", "", true},      // a bare LF
		{"\nhello\r\n0\r\n\r\n", "", true},       // an empty line: a panic once
		{"0\r\n\r\n", "", false},
		{"1\r\nx\r\n0\r\nX-Trailer: 1\r\n\r\n", "x", false},
	} {
		addr, _ := testkit.Answering(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+tc.body)
		pool := newProxy(t, spec("http://"+addr))
		for i := range 2 { // the second on the connection the first gave back, if it did
			resp, err := do(pool, "GET")
			if tc.fails {
				if err == nil {
					t.Errorf("%q: got %d; want the forward to fail", tc.body, resp.StatusCode())
				}
				break
			}
			if err != nil {
				t.Fatalf("%q, request %d: %v", tc.body, i, err)
			}
			if got := string(resp.Body()); got != tc.want {
				t.Errorf("%q, request %d: body %q; want %q", tc.body, i, got, tc.want)
			}
		}
	}
}
