package app

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/testkit"
)

// sseUpstream answers every request with a chunked text/event-stream: a
// first event with the head, then one each time next gets a value; it
// ends the stream when next closes. (fasthttp sends a streamed
// response's head with the first bytes of its body.)
func sseUpstream(t *testing.T, first string, next <-chan string) string {
	return "http://" + testkit.Listen(t, func(c net.Conn) {
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		fmt.Fprintf(c, "%x\r\n%s\r\n", len(first), first)
		for ev := range next {
			fmt.Fprintf(c, "%x\r\n%s\r\n", len(ev), ev)
		}
		io.WriteString(c, "0\r\n\r\n")
	})
}

// TestServerSentEventsFlowAsSent: each event reaches the client before
// the upstream sends the next, and the stream outlives the upstream
// timeout and server.write_timeout (300 ms each here) while it moves.
func TestServerSentEventsFlowAsSent(t *testing.T) {
	next := make(chan string)
	const first = "retry: 1000\n\n"
	// upstreams.main.timeout is 300 ms; the stream lasts 600 ms, past
	// server.write_timeout too.
	gw := startApp(t, loadConfig(t, sseUpstream(t, first, next), "server.write_timeout=300ms"))
	c := dial(t, gw.proxy)
	c.send("GET /events HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\nAccept: text/event-stream\r\n\r\n")
	if line := c.statusLine(); line != "HTTP/1.1 200 OK" {
		t.Fatalf("got %q; want 200", line)
	}
	for { // the head
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	tp := newChunkReader(c.br)
	if got := tp.event(t, len(first)); got != first {
		t.Fatalf("first event %q; want %q", got, first)
	}
	for i := range 6 {
		ev := fmt.Sprintf("data: event %d\n\n", i)
		next <- ev // the upstream sends it now, and nothing more until the next
		if got := tp.event(t, len(ev)); got != ev {
			t.Fatalf("event %d: got %q; want %q", i, got, ev)
		}
		time.Sleep(100 * time.Millisecond) // 600 ms in all: past the upstream timeout
	}
	close(next)
}

// chunkReader reads the chunked body of a response, as the client sees it.
type chunkReader struct{ br *bufio.Reader }

func newChunkReader(br *bufio.Reader) *chunkReader { return &chunkReader{br} }

// event reads chunks until n bytes of data have come.
func (r *chunkReader) event(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for b.Len() < n {
		var size int
		line, err := r.br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a chunk size: %v (so far %q)", err, b.String())
		}
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "%x", &size); err != nil || size == 0 {
			t.Fatalf("chunk size line %q; want a chunk", line)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r.br, buf); err != nil {
			t.Fatal(err)
		}
		b.Write(buf[:size])
	}
	return b.String()
}

// TestLargeResponsesStreamAndAreCapped: a body above the buffered size
// goes through whole; past max_response_bytes a declared length is a 502
// and a chunked body is cut.
func TestLargeResponsesStreamAndAreCapped(t *testing.T) {
	const size = 4 << 20
	upstream := rawUpstream(t, map[string]func(net.Conn) bool{
		"/big": func(c net.Conn) bool {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
			io.CopyN(c, strings.NewReader(strings.Repeat("b", size)), size)
			return true
		},
		"/chunked": func(c net.Conn) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
			for range 64 {
				fmt.Fprintf(c, "%x\r\n%s\r\n", 64<<10, strings.Repeat("c", 64<<10))
			}
			io.WriteString(c, "0\r\n\r\n")
			return true
		},
	})
	gw := startApp(t, loadConfig(t, "http://"+upstream, "upstreams.main.timeout=5s"))
	resp := call(t, gw.proxy, "GET", "/big", "X-API-Key", "bulk-key")
	if resp.StatusCode() != 200 || len(resp.Body()) != size {
		t.Fatalf("GET /big: %d with %d bytes; want 200 with %d", resp.StatusCode(), len(resp.Body()), size)
	}
	if resp := call(t, gw.proxy, "GET", "/chunked", "X-API-Key", "bulk-key"); resp.StatusCode() != 200 || len(resp.Body()) != 64*64<<10 {
		t.Fatalf("GET /chunked: %d with %d bytes; want 200 with %d", resp.StatusCode(), len(resp.Body()), 64*64<<10)
	}

	capped := startApp(t, loadConfig(t, "http://"+upstream, "upstreams.main.timeout=5s", "upstreams.main.max_response_bytes=1048576"))
	if resp := call(t, capped.proxy, "GET", "/big", "X-API-Key", "bulk-key"); resp.StatusCode() != 502 {
		t.Fatalf("GET /big over max_response_bytes: %d; want 502", resp.StatusCode())
	}
	c := dial(t, capped.proxy)
	c.send("GET /chunked HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\n\r\n")
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(c.br) // the head, then the body until the cut
	if n := len(got); n > 1<<20+(64<<10)+4096 || !strings.Contains(string(got), "200 OK") {
		t.Fatalf("chunked over max_response_bytes: read %d bytes; want the stream cut near 1 MiB", n)
	}
	if strings.HasSuffix(string(got), "0\r\n\r\n") {
		t.Fatal("the cut stream ended with a last chunk: the client would take it for whole")
	}
}

// TestStreamFailuresAreAnswered: a target that switches protocols on a
// plain request gets its connection closed (502), not reused for the next
// client; one that stalls before its first body byte is a 504, not an
// empty close; a stream cut at max_response_bytes is counted.
func TestStreamFailuresAreAnswered(t *testing.T) {
	upstream := rawUpstream(t, map[string]func(net.Conn) bool{
		"/switch": func(c net.Conn) bool {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nFOOBAR")
			return true
		},
		"/stall": func(c net.Conn) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
			time.Sleep(2 * time.Second)
			return false
		},
		"/long": func(c net.Conn) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
			for range 40 {
				fmt.Fprintf(c, "%x\r\n%s\r\n", 64<<10, strings.Repeat("l", 64<<10))
			}
			io.WriteString(c, "0\r\n\r\n")
			return true
		},
	})
	gw := startApp(t, loadConfig(t, "http://"+upstream, "upstreams.main.max_response_bytes=1048576"))
	if resp := call(t, gw.proxy, "GET", "/switch", "X-API-Key", "bulk-key"); resp.StatusCode() != 502 {
		t.Fatalf("101 on a plain request: %d; want 502", resp.StatusCode())
	}
	for range 3 { // whichever pooled connection serves them
		if resp := call(t, gw.proxy, "GET", "/ok", "X-API-Key", "bulk-key"); resp.StatusCode() != 200 || string(resp.Body()) != "ok" {
			t.Fatalf("after the 101: %d %q; want 200 ok (no leftover bytes)", resp.StatusCode(), resp.Body())
		}
	}
	if resp := call(t, gw.proxy, "GET", "/stall", "X-API-Key", "bulk-key"); resp.StatusCode() != 504 {
		t.Fatalf("stall before the first body byte: %d; want 504", resp.StatusCode())
	}
	tooLarge := func() string { // counters are the process's: compare
		for _, l := range strings.Split(string(call(t, gw.admin, "GET", "/metrics").Body()), "\n") {
			if strings.HasPrefix(l, `l1gw_upstream_errors_total{upstream="main",kind="too_large"}`) {
				return l
			}
		}
		return ""
	}
	before := tooLarge()
	c := dial(t, gw.proxy)
	c.send("GET /long HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\n\r\n")
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.ReadAll(c.br)
	testkit.Until(t, 5*time.Second, "the cut stream counted", func() bool { return tooLarge() != before })
}

// rawUpstream serves keep-alive HTTP/1.1 on a loopback port: each request
// goes to the handler of its path, which writes the raw answer and says
// whether the connection goes on; an unknown path gets 200 "ok".
func rawUpstream(t *testing.T, handlers map[string]func(c net.Conn) bool) string {
	return testkit.Listen(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			h, ok := handlers[req.URL.Path]
			if !ok {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				continue
			}
			if !h(c) {
				return
			}
		}
	})
}
