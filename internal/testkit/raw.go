package testkit

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// rawKeep bounds the raw bytes RawUpstream keeps of each connection.
const rawKeep = 64 << 10

// RawUpstream is a loopback HTTP/1.1 upstream that keeps the bytes it
// read off each connection, exactly as the gateway sent them, and counts
// the requests it read whole (body included). It answers each 200 "raw
// ok". Net/http's parser reads the requests: it is not the gateway's.
type RawUpstream struct {
	// URL is http://127.0.0.1:port.
	URL string

	mu       sync.Mutex
	raw      []byte
	requests int
	bodies   []int64
}

// StartRawUpstream serves until the test ends.
func StartRawUpstream(tb testing.TB) *RawUpstream {
	tb.Helper()
	u := &RawUpstream{}
	u.URL = "http://" + Listen(tb, u.serve)
	return u
}

func (u *RawUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(io.TeeReader(c, (*rawSink)(u)))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		n, err := io.Copy(io.Discard, req.Body)
		if err != nil {
			return // cut short: not a whole request
		}
		u.mu.Lock()
		u.requests++
		u.bodies = append(u.bodies, n)
		u.mu.Unlock()
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nraw ok"); err != nil {
			return
		}
	}
}

// rawSink appends what a connection read to the upstream's bytes, up to
// rawKeep in all.
type rawSink RawUpstream

func (s *rawSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if room := rawKeep - len(s.raw); room > 0 {
		s.raw = append(s.raw, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Raw is every byte read so far (up to 64 KiB), all connections in the
// order they were read.
func (u *RawUpstream) Raw() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return string(u.raw)
}

// Requests is how many whole requests it read.
func (u *RawUpstream) Requests() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.requests
}

// BodyBytes are the body lengths of the whole requests, in order.
func (u *RawUpstream) BodyBytes() []int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]int64(nil), u.bodies...)
}
