package upstream_test

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/upstream"
)

// flaky is a loopback target that, while down, closes every connection
// at once (the client sees a reset or a closed connection), and while up
// answers "flaky ok". It counts the connections it got.
type flaky struct {
	down  atomic.Bool
	conns atomic.Int32
	url   string
}

func startFlaky(t *testing.T) *flaky {
	f := &flaky{}
	f.url = "http://" + testkit.Listen(t, func(c net.Conn) {
		defer c.Close()
		f.conns.Add(1)
		if f.down.Load() {
			return
		}
		var req fasthttp.Request
		br := bufio.NewReader(c)
		for req.Read(br) == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nflaky ok")
			req.Reset()
		}
	})
	return f
}

// TestPassiveEjection: a target whose connections fail Failures times in
// a row gets no traffic for the backoff, while the other target takes
// every request; readmitted after it, the target that works again stays
// in; one that fails again is ejected at once.
func TestPassiveEjection(t *testing.T) {
	bad := startFlaky(t)
	bad.down.Store(true)
	good := testkit.StartUpstream(t, nil)
	s := spec(bad.url, good.URL)
	s.Retries = 0
	s.Eject = upstream.EjectSpec{Failures: 2, Backoff: 400 * time.Millisecond}
	pool := newProxy(t, s)

	// Round robin: the bad target gets a request every other time until
	// it fails twice.
	failed := 0
	for range 10 {
		if _, err := do(pool, "GET"); err != nil {
			failed++
		}
	}
	if failed != 2 {
		t.Fatalf("%d of 10 requests failed; want exactly 2, then the bad target ejected", failed)
	}
	if n := pool.Ejected(); n != 1 {
		t.Fatalf("Ejected() = %d; want 1", n)
	}
	conns := bad.conns.Load()
	for range 20 {
		if _, err := do(pool, "GET"); err != nil {
			t.Fatalf("a request failed while the bad target was ejected: %v", err)
		}
	}
	if n := bad.conns.Load(); n != conns {
		t.Fatalf("the ejected target got %d connections; want none", n-conns)
	}

	// Readmitted after the backoff and failing again: ejected at once.
	testkit.Until(t, 5*time.Second, "the backoff over", func() bool { return pool.Ejected() == 0 })
	failed = 0
	for range 10 {
		if _, err := do(pool, "GET"); err != nil {
			failed++
		}
	}
	if failed != 1 || pool.Ejected() != 1 {
		t.Fatalf("after readmission: %d failed, %d ejected; want 1 failure and the target ejected again", failed, pool.Ejected())
	}

	// Up again: once readmitted it serves, and stays in.
	bad.down.Store(false)
	testkit.Until(t, 5*time.Second, "the second, longer backoff over", func() bool { return pool.Ejected() == 0 })
	conns = bad.conns.Load()
	for range 10 {
		if resp, err := do(pool, "GET"); err != nil {
			t.Fatalf("a request failed with both targets up: %v", err)
		} else if resp.StatusCode() != 200 {
			t.Fatalf("status %d; want 200", resp.StatusCode())
		}
	}
	if bad.conns.Load() == conns || pool.Ejected() != 0 {
		t.Fatalf("the recovered target got no traffic (ejected: %d); want it back in rotation", pool.Ejected())
	}
}

// TestEjectionOffAtZero: with failures 0 nothing is ejected.
func TestEjectionOffAtZero(t *testing.T) {
	bad := startFlaky(t)
	bad.down.Store(true)
	s := spec(bad.url)
	s.Retries = 0
	pool := newProxy(t, s)
	for range 5 {
		do(pool, "GET")
	}
	if n := pool.Ejected(); n != 0 {
		t.Fatalf("Ejected() = %d with ejection off; want 0", n)
	}
}
