package upstream_test

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
)

// smuggler is an upstream that answers each request on a connection by
// its path: /extra with a Content-Length shorter than what it sends, the
// rest (a whole second response) 50 ms later; /204 with a body on a 204;
// HEAD with a body in the same write; anything else "normal".
func smuggler(t *testing.T) string {
	return testkit.Listen(t, func(c net.Conn) {
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
				time.Sleep(50 * time.Millisecond)
				c.Write([]byte(injected))
			case req.URL.Path == "/204":
				c.Write([]byte("HTTP/1.1 204 No Content\r\n\r\n" + injected))
			case req.Method == "HEAD":
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n" + injected[len(injected)-14:] + injected))
			default:
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nnormal"))
			}
		}
	})
}

// TestNoResponseCrossesToTheNextRequest: bytes an upstream sends past the
// response it declared, at once or later, never become the answer to the
// next request on that connection, which may be another tenant's: the
// connection is closed instead of reused.
func TestNoResponseCrossesToTheNextRequest(t *testing.T) {
	for _, first := range []struct{ method, path string }{{"GET", "/extra"}, {"GET", "/204"}, {"HEAD", "/head"}} {
		t.Run(first.method+first.path, func(t *testing.T) {
			s := spec("http://" + smuggler(t))
			s.MaxConnsPerTarget = 1 // one connection: the next request would reuse it
			pool := newProxy(t, s)
			req, resp := &fasthttp.Request{}, &fasthttp.Response{}
			req.SetRequestURI("http://example.test" + first.path)
			req.Header.SetMethod(first.method)
			if err := pool.Forward(req, resp); err != nil {
				t.Fatalf("%s %s: %v", first.method, first.path, err)
			}
			time.Sleep(100 * time.Millisecond) // the late bytes are in
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

// TestAClosedIdleConnectionIsNotUsed: an upstream that closes its idle
// keep-alive connections (a shorter idle timeout than the pool's) costs a
// POST nothing: the pool sees the close before writing to it, where a
// POST, not retried, would fail.
func TestAClosedIdleConnectionIsNotUsed(t *testing.T) {
	addr := testkit.Listen(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		// and closes: no second request on this connection
	})
	s := spec("http://" + addr)
	s.MaxConnsPerTarget, s.Retries = 1, 0
	pool := newProxy(t, s)
	for i := range 3 {
		_, err := do(pool, "POST")
		if err != nil {
			t.Fatalf("POST %d: %v; want each on a connection that is open", i, err)
		}
		time.Sleep(50 * time.Millisecond) // the close arrives
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
		{"0\r\n\r\n", "", false},
		{"1\r\nx\r\n0\r\nX-Trailer: 1\r\n\r\n", "x", false},
	} {
		addr := testkit.Listen(t, func(c net.Conn) {
			defer c.Close()
			br := bufio.NewReader(c)
			for {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				c.Write([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + tc.body))
			}
		})
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
