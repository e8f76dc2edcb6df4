package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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
	// openWorkers is the open loop's worker pool, the bound on its
	// requests in flight: 256 in flight is 25 ms of latency at 10k req/s.
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
	limitedDegraded int64 // of those, the ones marked degraded
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
		if degraded {
			t.limitedDegraded++
		}
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
	t.limitedDegraded += o.limitedDegraded
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
	client := loadClient(addr, conns)
	defer client.CloseIdleConnections()
	var stopped atomic.Bool
	defer context.AfterFunc(ctx, func() { stopped.Store(true) })()
	mx := newMix(addr, keys)
	parts := make([]*tally, conns)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := range parts {
		parts[i] = newTally()
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for n := i; !stopped.Load() && time.Now().Before(end); n++ {
				if !mx.send(client, req, resp, n, parts[i], time.Now().Add(requestTimeout)) {
					time.Sleep(10 * time.Millisecond) // no hot loop on a refused connection
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return nil, 0, fmt.Errorf("closed loop stopped: %w", err)
	}
	return mergeTallies(parts), elapsed, nil
}

// openLoop sends rate requests per second to addr for d, whatever the
// answers take: request n is due start + n/rate. openWorkers workers take
// the requests in turn, each sleeping until its request is due, so at
// most openWorkers are out at once; a system slower than that falls
// behind and its req/s shows it. Nothing is sent, or waited for, once d
// and a request timeout have passed: a system that stops answering ends
// the loop then.
// A latency runs from the request's send to its response read, as vegeta
// times it. It returns the tally, the latencies (unordered) and the time
// from start until the last answer.
//
// It is not vegeta: vegeta's request and result objects cost the runner
// 25-32 µs of CPU per request (against the upstream alone at 5-25k
// req/s), on the CPU it shares with the upstream and Redis; at half of the
// faster systems' rates its own queue was most of the latency. This loop
// costs 18-25 µs there, the closed loop 9.
func openLoop(ctx context.Context, addr string, rate int, d time.Duration, keys []string) (*tally, []time.Duration, time.Duration, error) {
	if err := harness.CheckLoopback(addr); err != nil {
		return nil, nil, 0, err
	}
	if rate <= 0 {
		return nil, nil, 0, fmt.Errorf("open loop: rate %d, want > 0", rate)
	}
	client := loadClient(addr, openWorkers)
	defer client.CloseIdleConnections()
	var stopped atomic.Bool
	defer context.AfterFunc(ctx, func() { stopped.Store(true) })()
	mx := newMix(addr, keys)
	total := int64(d.Seconds() * float64(rate))
	var next atomic.Int64
	parts := make([]*tally, openWorkers)
	lat := make([][]time.Duration, openWorkers)
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d + requestTimeout)
	for i := range parts {
		parts[i] = newTally()
		lat[i] = make([]time.Duration, 0, total/openWorkers+1)
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for !stopped.Load() {
				n := next.Add(1) - 1
				if n >= total {
					return
				}
				due := start.Add(time.Duration(n * int64(time.Second) / int64(rate)))
				if wait := time.Until(due); wait > 0 {
					timer.Reset(wait)
					select {
					case <-timer.C:
					case <-ctx.Done():
						return
					}
				}
				sent := time.Now()
				if !sent.Before(stop) {
					return
				}
				deadline := sent.Add(requestTimeout)
				if deadline.After(stop) {
					deadline = stop
				}
				if mx.send(client, req, resp, int(n), parts[i], deadline) {
					lat[i] = append(lat[i], time.Since(sent))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return nil, nil, 0, fmt.Errorf("open loop stopped: %w", err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return mergeTallies(parts), all, elapsed, nil
}

// loadClient is the load generator's client to addr, with at most conns
// connections.
func loadClient(addr string, conns int) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr: addr, MaxConns: conns, ReadTimeout: requestTimeout, WriteTimeout: requestTimeout,
		MaxConnWaitTimeout: requestTimeout, MaxIdleConnDuration: time.Minute,
		NoDefaultUserAgentHeader: true, DisablePathNormalizing: true,
	}
}

// mix is the request mix against one address: request n is the limited
// tenant's when n%limitedEvery is 0, else the bench load's, on
// keys[n%len(keys)].
type mix struct {
	bench, limited string
	keys           []string
}

func newMix(addr string, keys []string) mix {
	return mix{bench: "http://" + addr + loadPath, limited: "http://" + addr + limitedPath, keys: keys}
}

// send sends request n of the mix over client (req and resp are the
// caller's to reuse) and counts it in t. fasthttp's retries of a GET on a
// connection the server closed all fall before deadline. false: no
// response.
func (mx mix) send(client *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, n int, t *tally, deadline time.Time) bool {
	isLimited := n%limitedEvery == 0
	if isLimited {
		req.SetRequestURI(mx.limited)
		req.Header.Set(apiKeyHeader, limitedKey)
		t.limitedSent++
	} else {
		req.SetRequestURI(mx.bench)
		req.Header.Set(apiKeyHeader, mx.keys[n%len(mx.keys)])
	}
	if err := client.DoDeadline(req, resp, deadline); err != nil {
		t.failure(err.Error())
		return false
	}
	t.response(resp.StatusCode(), bytes.Equal(resp.Header.Peek(statusHeader), degradedValue), isLimited)
	return true
}

// mergeTallies adds parts up.
func mergeTallies(parts []*tally) *tally {
	total := newTally()
	for _, p := range parts {
		total.merge(p)
	}
	return total
}
