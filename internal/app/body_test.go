package app

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
)

// conn is a raw client connection to the gateway.
type conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &conn{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *conn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// statusLine reads the next status line and leaves the rest unread.
func (c *conn) statusLine() string {
	c.t.Helper()
	line, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read a status line: %v (got %q)", err, line)
	}
	return strings.TrimRight(line, "\r\n")
}

// response reads a whole final response (fasthttp skips 1xx ones).
func (c *conn) response() *fasthttp.Response {
	c.t.Helper()
	resp := &fasthttp.Response{}
	if err := resp.Read(c.br); err != nil {
		c.t.Fatalf("read a response: %v", err)
	}
	return resp
}

// closed: the gateway closed the connection; what it still sent (the
// rest of a response) is read and dropped.
func (c *conn) closed() bool {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// post is a POST request head to /upload with the given extra headers.
func post(length string, headers ...string) string {
	s := "POST /upload HTTP/1.1\r\nHost: gw\r\n"
	if length != "" {
		s += "Content-Length: " + length + "\r\n"
	}
	for _, h := range headers {
		s += h + "\r\n"
	}
	return s + "\r\n"
}

// TestExpectContinueOnlyAfterAdmission: Expect: 100-continue is answered
// on the headers. A request without a key, with an unknown key or over its
// limit gets its final answer and a closed connection, never "100
// Continue", and the upstream sees nothing; an admitted one gets "100
// Continue", then its body goes through.
func TestExpectContinueOnlyAfterAdmission(t *testing.T) {
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL))
	refusals := []struct {
		name, headers string
		status        int
	}{
		{"no key", post("10485760", "Expect: 100-continue"), 401},
		{"unknown key", post("10485760", "Expect: 100-continue", "X-API-Key: nope"), 401},
		{"too large", post("10485760", "Expect: 100-continue", "X-API-Key: bulk-key"), 413},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			c := dial(t, gw.proxy)
			c.send(r.headers)
			if line := c.statusLine(); !strings.HasPrefix(line, fmt.Sprintf("HTTP/1.1 %d ", r.status)) {
				t.Fatalf("first line %q; want a %d and no 100 Continue", line, r.status)
			}
			if !c.closed() {
				t.Error("connection left open; want it closed: the client may be sending its body")
			}
		})
	}
	t.Run("over the limit", func(t *testing.T) {
		for i := range 2 { // POST /v1/expensive: 1 per minute
			c := dial(t, gw.proxy)
			c.send("POST /v1/expensive HTTP/1.1\r\nHost: gw\r\nX-API-Key: acme-key\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
			line := c.statusLine()
			want := "HTTP/1.1 100 Continue"
			if i == 1 {
				want = "HTTP/1.1 429 Too Many Requests"
			}
			if line != want {
				t.Fatalf("request %d: first line %q; want %q", i+1, line, want)
			}
			if i == 0 {
				c.send("hello")
				if resp := c.response(); resp.StatusCode() != 200 {
					t.Fatalf("admitted request: %d; want 200", resp.StatusCode())
				}
			}
		}
	})
	if n := up.Requests(); n != 1 {
		t.Errorf("upstream read %d whole requests; want 1, the admitted one", n)
	}
	if b := up.BodyBytes(); len(b) != 1 || b[0] != 5 {
		t.Errorf("upstream bodies %v; want [5]", b)
	}
}

// TestRefusedBodyIsNeverRead: a request refused on its headers has its
// connection closed, so the body it declared is never parsed as a next
// request, not even one smuggled in it.
func TestRefusedBodyIsNeverRead(t *testing.T) {
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL))
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\n\r\n"
	for _, tc := range []struct{ name, head string }{
		{"no key", post(fmt.Sprint(len(smuggled)))},
		{"chunked, no key", post("", "Transfer-Encoding: chunked")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, gw.proxy)
			body := smuggled
			if strings.Contains(tc.head, "chunked") {
				body = fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)
			}
			c.send(tc.head + body)
			if resp := c.response(); resp.StatusCode() != 401 {
				t.Fatalf("got %d; want 401", resp.StatusCode())
			}
			if !c.closed() {
				t.Error("connection open after a refusal with a body on the wire; want it closed")
			}
		})
	}
	if strings.Contains(up.Raw(), "smuggled") || up.Requests() != 0 {
		t.Errorf("upstream read %d requests: %q; want none", up.Requests(), up.Raw())
	}
}

// TestBodyCapWhileStreaming: max_body_bytes holds for a declared length
// (413 before the body, not counted against the limits) and for a chunked
// body (413 once past it, the connection closed, the upstream left with
// no whole request); a body within it reaches the upstream intact.
func TestBodyCapWhileStreaming(t *testing.T) {
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL)) // max_body_bytes: 1024
	t.Run("declared", func(t *testing.T) {
		c := dial(t, gw.proxy)
		// fasthttp reads up to max_body_bytes (at most 8 KiB) before the
		// handler: send that much, not the rest.
		c.send(post("4096", "X-API-Key: acme-key") + strings.Repeat("x", 1024))
		if resp := c.response(); resp.StatusCode() != 413 {
			t.Fatalf("got %d; want 413", resp.StatusCode())
		}
		if !c.closed() {
			t.Error("connection open with 3 KiB of body unread; want it closed")
		}
	})
	t.Run("chunked", func(t *testing.T) {
		c := dial(t, gw.proxy)
		chunk := fmt.Sprintf("258\r\n%s\r\n", strings.Repeat("y", 600))
		c.send(post("", "X-API-Key: bulk-key", "Transfer-Encoding: chunked") + chunk + chunk + chunk + "0\r\n\r\n")
		if resp := c.response(); resp.StatusCode() != 413 {
			t.Fatalf("got %d; want 413", resp.StatusCode())
		}
		if !c.closed() {
			t.Error("connection open after a cut body; want it closed")
		}
	})
	if n := up.Requests(); n != 0 {
		t.Fatalf("upstream read %d whole requests; want none", n)
	}
	t.Run("within", func(t *testing.T) {
		c := dial(t, gw.proxy)
		c.send(post("1000", "X-API-Key: bulk-key") + strings.Repeat("z", 1000))
		if resp := c.response(); resp.StatusCode() != 200 {
			t.Fatalf("got %d; want 200", resp.StatusCode())
		}
		chunk := fmt.Sprintf("1f4\r\n%s\r\n", strings.Repeat("w", 500))
		c.send(post("", "X-API-Key: bulk-key", "Transfer-Encoding: chunked") + chunk + chunk + "0\r\n\r\n")
		if resp := c.response(); resp.StatusCode() != 200 {
			t.Fatalf("chunked: got %d; want 200", resp.StatusCode())
		}
	})
	if b := up.BodyBytes(); len(b) != 2 || b[0] != 1000 || b[1] != 1000 {
		t.Errorf("upstream bodies %v; want [1000 1000]", b)
	}
	// acme's 3 per minute: the 413 above did not count.
	for i := range 3 {
		if resp := call(t, gw.proxy, "GET", "/", "X-API-Key", "acme-key"); resp.StatusCode() != 200 {
			t.Fatalf("acme request %d: %d; want 200 (a refused body costs no quota)", i+1, resp.StatusCode())
		}
	}
}

// TestRefusalWithoutBodyKeepsTheConnection: a request refused for its
// limit that declared no body leaves nothing on the wire, so its
// keep-alive connection serves the next request; a client that has not
// authenticated keeps none.
func TestRefusalWithoutBodyKeepsTheConnection(t *testing.T) {
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL))
	c := dial(t, gw.proxy)
	for i, tc := range []struct {
		head   string
		status int
	}{
		{"POST /v1/expensive HTTP/1.1\r\nHost: gw\r\nX-API-Key: acme-key\r\n\r\n", 200},
		{"POST /v1/expensive HTTP/1.1\r\nHost: gw\r\nX-API-Key: acme-key\r\nContent-Length: 0\r\n\r\n", 429},
		{"GET /b HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\n\r\n", 200},
		{"GET /a HTTP/1.1\r\nHost: gw\r\n\r\n", 401},
	} {
		c.send(tc.head)
		resp := c.response()
		last := i == 3
		if resp.StatusCode() != tc.status || resp.ConnectionClose() != last {
			t.Fatalf("%q: got %d (connection close: %v); want %d, connection close %v",
				strings.SplitN(tc.head, "\r\n", 2)[0], resp.StatusCode(), resp.ConnectionClose(), tc.status, last)
		}
	}
	if !c.closed() {
		t.Error("connection open after a 401; want it closed")
	}
}

// TestClientBreakingOffItsBodyIsNotTheTargets: a client that resets in
// the middle of its body fails its own request, and is not counted against
// the target: no upstream error, no ejection.
func TestClientBreakingOffItsBodyIsNotTheTargets(t *testing.T) {
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL, "server.max_body_bytes=1048576", "upstreams.main.eject.failures=2"))
	for range 4 {
		before := len(up.Raw())
		c := dial(t, gw.proxy)
		c.send(post("100000", "X-API-Key: bulk-key") + strings.Repeat("x", 12000))
		// In the forward, streaming to the target and waiting for the rest.
		testkit.Until(t, 5*time.Second, "the body streaming to the target", func() bool { return len(up.Raw()) > before+9000 })
		c.c.(*net.TCPConn).SetLinger(0)
		c.c.Close() // RST
	}
	// The last broken body has been handled: a whole request gets through.
	testkit.Until(t, 5*time.Second, "a request through the same target", func() bool {
		return call(t, gw.proxy, "GET", "/after", "X-API-Key", "bulk-key").StatusCode() == 200
	})
	m := string(call(t, gw.admin, "GET", "/metrics").Body())
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, `l1gw_upstream_ejections_total{upstream="main"}`) && !strings.HasSuffix(line, " 0") ||
			strings.HasPrefix(line, `l1gw_upstream_errors_total{upstream="main",kind="reset"}`) && !strings.HasSuffix(line, " 0") {
			t.Errorf("%s; want 0: the clients broke off, not the target", line)
		}
	}
}

// TestStalledBodyIsARequestTimeout: a client whose body stalls past
// server.read_timeout while it streams to the target gets 408, chunked or
// with a length, and the target is not blamed: a chunked one was a 504
// counted as the target's timeout.
func TestStalledBodyIsARequestTimeout(t *testing.T) {
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL, "server.read_timeout=500ms", "server.max_body_bytes=1048576"))
	const timeouts = `l1gw_upstream_errors_total{upstream="main",kind="timeout"}`
	before := metricValue(t, gw.admin, timeouts)
	for _, tc := range []struct{ name, head, body string }{
		{"chunked", "POST /x HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\nhello\r\n"},
		{"a length", post("100000", "X-API-Key: bulk-key"), strings.Repeat("x", 12000)},
	} {
		c := dial(t, gw.proxy)
		c.send(tc.head + tc.body) // and nothing more
		if resp := c.response(); resp.StatusCode() != 408 {
			t.Errorf("%s, stalled: got %d %q; want 408", tc.name, resp.StatusCode(), resp.Body())
		}
	}
	if got := metricValue(t, gw.admin, timeouts) - before; got != 0 {
		t.Errorf("%s grew by %v: the stalled clients were counted against the target", timeouts, got)
	}
}

// TestExpectWithoutBodyGivesItsLeaseBack: a client that takes "100
// Continue" under a concurrency limit and then hangs up without sending
// its body gives its lease back with the connection. The crowd plan
// allows 5 in flight with a lease TTL of a minute: after 5 such clients,
// a sixth request is admitted at once.
func TestExpectWithoutBodyGivesItsLeaseBack(t *testing.T) {
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL))
	for i := range 5 {
		c := dial(t, gw.proxy)
		c.send("POST /crowd HTTP/1.1\r\nHost: gw\r\nX-API-Key: crowd-key\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		if line := c.statusLine(); line != "HTTP/1.1 100 Continue" {
			t.Fatalf("client %d: first line %q; want 100 Continue", i+1, line)
		}
		c.c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, resp := &fasthttp.Request{}, &fasthttp.Response{}
		req.SetRequestURI("http://" + gw.proxy + "/crowd")
		req.Header.Set("X-API-Key", "crowd-key")
		if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a request after 5 abandoned Expect requests: %d (%s); want 200, their leases given back", resp.StatusCode(), resp.Body())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
