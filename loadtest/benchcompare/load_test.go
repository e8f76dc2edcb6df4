package main

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// recordingServer answers every request after delay and records when each
// arrived and with which key and path.
type recordingServer struct {
	addr  string
	mu    sync.Mutex
	at    []time.Time    // arrivals
	keys  map[string]int // X-API-Key → requests
	paths map[string]int // request URI → requests
}

func startRecordingServer(t *testing.T, delay time.Duration) *recordingServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &recordingServer{addr: ln.Addr().String(), keys: map[string]int{}, paths: map[string]int{}}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		rs.mu.Lock()
		rs.at = append(rs.at, time.Now())
		rs.keys[string(ctx.Request.Header.Peek(apiKeyHeader))]++
		rs.paths[string(ctx.RequestURI())]++
		rs.mu.Unlock()
		time.Sleep(delay)
		ctx.SetBodyString("ok")
	}}
	go s.Serve(ln) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { s.Shutdown() })
	return rs
}

// TestOpenLoopPacesAndMixes: the open loop sends exactly rate × d requests
// in the mix, spread over d rather than sent at once, and times each from
// its send to its answer.
func TestOpenLoopPacesAndMixes(t *testing.T) {
	const delay = 20 * time.Millisecond
	rs := startRecordingServer(t, delay)
	keys := []string{"k1", "k2"}
	start := time.Now()
	tl, lat, elapsed, err := openLoop(context.Background(), rs.addr, 500, 2*time.Second, keys)
	if err != nil {
		t.Fatal(err)
	}
	if tl.responses != 1000 || tl.codes[200] != 1000 || tl.transportErrors != 0 || len(lat) != 1000 {
		t.Fatalf("responses %d, codes %v, errors %d %v, latencies %d; want 1000 answered 200", tl.responses, tl.codes, tl.transportErrors, tl.errors, len(lat))
	}
	if tl.limitedSent != 1000/limitedEvery || rs.paths[limitedPath] != 1000/limitedEvery || rs.keys[limitedKey] != 1000/limitedEvery {
		t.Errorf("limited sent %d, on its path %d, with its key %d; want %d", tl.limitedSent, rs.paths[limitedPath], rs.keys[limitedKey], 1000/limitedEvery)
	}
	if rs.keys["k1"] == 0 || rs.keys["k2"] == 0 || rs.keys["k1"]+rs.keys["k2"] != 1000-1000/limitedEvery {
		t.Errorf("bench keys %v; want both, and every bench request", rs.keys)
	}
	for _, d := range lat {
		if d < delay {
			t.Fatalf("a latency of %v, below the server's own %v", d, delay)
		}
	}
	// Paced: the first second's share of arrivals is about half. Sent at
	// once (or all in the second half), it would be 0 or 1.
	first := 0
	for _, at := range rs.at {
		if at.Sub(start) < time.Second {
			first++
		}
	}
	if first < 250 || first > 750 {
		t.Errorf("%d of 1000 arrived in the first second of two; want about half", first)
	}
	if elapsed < 2*time.Second-10*time.Millisecond {
		t.Errorf("done in %v; the last request is due at about 2 s", elapsed)
	}
}

// TestOpenLoopStopsWithItsContext: a cancelled context ends the loop with
// an error, not after d.
func TestOpenLoopStopsWithItsContext(t *testing.T) {
	rs := startRecordingServer(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		_, _, _, err := openLoop(ctx, rs.addr, 100, time.Hour, []string{"k"})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("no error from a cancelled open loop")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("open loop still running 30 s after its context ended")
	}
}

func TestNearestRank(t *testing.T) {
	sorted := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.99, 10}, {0.1, 1}, {0.11, 2}, {0, 1}, {1, 10}} {
		if got := nearestRank(sorted, c.q); got != c.want {
			t.Errorf("q %v: %v; want %v", c.q, got, c.want)
		}
	}
	if got := nearestRank([]time.Duration{7}, 0.99); got != 7 {
		t.Errorf("one value: %v", got)
	}
}

func TestOpenLoopRejectsANonPositiveRate(t *testing.T) {
	if _, _, _, err := openLoop(context.Background(), "127.0.0.1:1", 0, time.Second, []string{"k"}); err == nil {
		t.Error("rate 0 accepted")
	}
}

// TestOpenLoopEndsWhenNothingAnswers: against a server that accepts and
// never answers, the loop sends and waits no more once its duration and a
// request timeout are over, rather than waiting out a timeout (and
// fasthttp's retries) for every request left: 2 000 requests over 256
// workers would be 8 rounds of 5 s.
func TestOpenLoopEndsWhenNothingAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a request timeout; skipped with -short")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	start := time.Now()
	tl, lat, _, err := openLoop(context.Background(), ln.Addr().String(), 2000, time.Second, []string{"k"})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 0 || tl.responses != 0 || tl.transportErrors == 0 {
		t.Fatalf("%d latencies, %d responses, %d errors; want none answered and the timeouts counted", len(lat), tl.responses, tl.transportErrors)
	}
	if limit := time.Second + requestTimeout + 3*time.Second; took > limit {
		t.Fatalf("ended after %v; want within %v: the duration and a timeout, with room", took, limit)
	}
	if tl.transportErrors >= 2000 {
		t.Fatalf("%d requests sent to a server that never answers; want those of the first round only", tl.transportErrors)
	}
}

// TestOverAdmissionCountsOnlyAdmissionsMarkedOK: the limited tenant's
// admissions marked degraded (fail open, decided without Redis) are
// counted beside those marked ok, and only those marked ok past the limit
// are over-admission.
func TestOverAdmissionCountsOnlyAdmissionsMarkedOK(t *testing.T) {
	tl := newTally()
	for range 100 {
		tl.response(200, false, true)
	}
	for range 34 {
		tl.response(200, true, true)
	}
	tl.response(429, false, true)
	tl.response(200, true, false) // another tenant's
	m := Measurement{Enforced: true, LimitedLimit: 100}
	m.fill(tl, time.Second)
	if m.LimitedAdmitted != 134 || m.LimitedDegraded != 34 || m.LimitedOK() != 100 || m.OverAdmitted != 0 {
		t.Fatalf("admitted %d, degraded %d, ok %d, over %d; want 134, 34, 100, 0",
			m.LimitedAdmitted, m.LimitedDegraded, m.LimitedOK(), m.OverAdmitted)
	}
	tl.response(200, false, true) // one more marked ok: past the limit
	m.fill(tl, time.Second)
	if m.OverAdmitted != 1 {
		t.Fatalf("over-admitted %d with 101 marked ok of a limit of 100; want 1", m.OverAdmitted)
	}
}
