package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// The request mix: every limitedEvery-th request is the limited tenant's,
// on limitedPath (so the open loop's results tell them apart), the rest
// the bench tenant's on loadPath.
const (
	loadPath       = "/load"
	limitedPath    = "/load?t=limited"
	limitedEvery   = 50
	requestTimeout = 5 * time.Second
	maxErrors      = 5 // distinct transport errors kept
	// openWorkers is vegeta's fixed worker pool, the bound on the open
	// loop's requests in flight. Fixed: on the runner's one CPU vegeta
	// otherwise takes a worker not yet scheduled for a blocked one, grows
	// to its maximum and opens as many connections, a storm that collapses
	// the system under test. 256 in flight is 25 ms of latency at 10k req/s.
	openWorkers  = 256
	statusHeader = "X-Ratelimit-Status"
)

var degradedValue = []byte("degraded")

// tally is what the responses of one measurement add up to.
type tally struct {
	responses       int64 // requests answered (any status)
	codes           map[int]int64
	degraded        int64 // X-RateLimit-Status: degraded
	limitedSent     int64
	limitedAdmitted int64 // the limited tenant's 2xx
	transportErrors int64 // requests with no response
	errors          []string
}

func newTally() *tally { return &tally{codes: map[int]int64{}} }

// response counts one answered request.
func (t *tally) response(code int, degraded, limited bool) {
	t.responses++
	t.codes[code]++
	if degraded {
		t.degraded++
	}
	if limited && code/100 == 2 {
		t.limitedAdmitted++
	}
}

// failure counts one request without a response.
func (t *tally) failure(msg string) {
	t.transportErrors++
	if len(t.errors) < maxErrors && !contains(t.errors, msg) {
		t.errors = append(t.errors, msg)
	}
}

// merge adds o into t.
func (t *tally) merge(o *tally) {
	t.responses += o.responses
	for c, n := range o.codes {
		t.codes[c] += n
	}
	t.degraded += o.degraded
	t.limitedSent += o.limitedSent
	t.limitedAdmitted += o.limitedAdmitted
	t.transportErrors += o.transportErrors
	for _, e := range o.errors {
		if len(t.errors) < maxErrors && !contains(t.errors, e) {
			t.errors = append(t.errors, e)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// closedLoop runs conns workers against addr for d, each sending its next
// request as soon as the previous one is answered, over at most conns
// connections; the bench load goes to keys in turn. It returns the tally
// and the time from start until the last worker was done.
func closedLoop(ctx context.Context, addr string, conns int, d time.Duration, keys []string) (*tally, time.Duration, error) {
	if err := harness.CheckLoopback(addr); err != nil {
		return nil, 0, err
	}
	client := &fasthttp.HostClient{
		Addr: addr, MaxConns: conns, ReadTimeout: requestTimeout, WriteTimeout: requestTimeout,
		MaxConnWaitTimeout: requestTimeout, MaxIdleConnDuration: time.Minute,
		NoDefaultUserAgentHeader: true, DisablePathNormalizing: true,
	}
	defer client.CloseIdleConnections()
	var stopped atomic.Bool
	defer context.AfterFunc(ctx, func() { stopped.Store(true) })()
	parts := make([]*tally, conns)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := range parts {
		parts[i] = newTally()
		wg.Go(func() { closedWorker(client, addr, keys, i, end, &stopped, parts[i]) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return nil, 0, fmt.Errorf("closed loop stopped: %w", err)
	}
	total := newTally()
	for _, p := range parts {
		total.merge(p)
	}
	return total, elapsed, nil
}

// closedWorker sends requests back to back until end or stopped.
func closedWorker(client *fasthttp.HostClient, addr string, keys []string, id int, end time.Time, stopped *atomic.Bool, t *tally) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	bench, limited := "http://"+addr+loadPath, "http://"+addr+limitedPath
	for n := id; !stopped.Load() && time.Now().Before(end); n++ {
		isLimited := n%limitedEvery == 0
		if isLimited {
			req.SetRequestURI(limited)
			req.Header.Set(apiKeyHeader, limitedKey)
			t.limitedSent++
		} else {
			req.SetRequestURI(bench)
			req.Header.Set(apiKeyHeader, keys[n%len(keys)])
		}
		if err := client.Do(req, resp); err != nil {
			t.failure(err.Error())
			time.Sleep(10 * time.Millisecond) // no hot loop on a refused connection
			continue
		}
		t.response(resp.StatusCode(), bytes.Equal(resp.Header.Peek(statusHeader), degradedValue), isLimited)
	}
}

// openLoop sends rate requests per second to addr for d with vegeta,
// whatever the answers take, and returns the tally and vegeta's metrics.
// A timer stops it in any case once d and a request timeout are over.
func openLoop(ctx context.Context, addr string, rate int, d time.Duration, keys []string) (*tally, *vegeta.Metrics, error) {
	if err := harness.CheckLoopback(addr); err != nil {
		return nil, nil, err
	}
	ft, err := newFastTransport(addr)
	if err != nil {
		return nil, nil, err
	}
	defer ft.CloseIdleConnections()
	client := &http.Client{
		Transport: ft, Timeout: requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// No vegeta option that configures its own *http.Transport: Client
	// replaces it (and those options would fail their type assertion).
	a := vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(openWorkers), vegeta.MaxWorkers(openWorkers), vegeta.MaxBody(0))
	defer context.AfterFunc(ctx, func() { a.Stop() })()
	hard := time.AfterFunc(d+2*requestTimeout, func() { a.Stop() })
	defer hard.Stop()
	t, m := newTally(), &vegeta.Metrics{}
	var limitedSent atomic.Int64
	for res := range a.Attack(mixTargeter(addr, keys, &limitedSent), vegeta.Rate{Freq: rate, Per: time.Second}, d, "open") {
		m.Add(res)
		if res.Code == 0 {
			t.failure(res.Error)
			continue
		}
		t.response(int(res.Code), res.Headers.Get(statusHeader) == string(degradedValue), strings.HasSuffix(res.URL, limitedPath))
	}
	m.Close()
	if err := context.Cause(ctx); err != nil {
		return nil, nil, fmt.Errorf("open loop stopped: %w", err)
	}
	t.limitedSent = limitedSent.Load()
	return t, m, nil
}

// mixTargeter is the request mix as a vegeta targeter, the bench load
// going to keys in turn; it counts the limited tenant's requests in
// limitedSent.
func mixTargeter(addr string, keys []string, limitedSent *atomic.Int64) vegeta.Targeter {
	h := http.CanonicalHeaderKey(apiKeyHeader)
	bench := make([]vegeta.Target, len(keys))
	for i, k := range keys {
		bench[i] = vegeta.Target{Method: http.MethodGet, URL: "http://" + addr + loadPath, Header: http.Header{h: {k}}}
	}
	limited := vegeta.Target{Method: http.MethodGet, URL: "http://" + addr + limitedPath, Header: http.Header{h: {limitedKey}}}
	var next atomic.Uint64
	return func(t *vegeta.Target) error {
		if t == nil {
			return vegeta.ErrNilTarget
		}
		// Target.Request copies the header, so sharing it is safe.
		if n := next.Add(1); n%limitedEvery == 1 {
			limitedSent.Add(1)
			*t = limited
		} else {
			*t = bench[n%uint64(len(bench))]
		}
		return nil
	}
}
