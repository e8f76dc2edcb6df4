package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// The flood: a closed loop beside the measured attack, as tenant flood,
// that keeps the gateway at its limit. A busy gateway is not a Redis
// fault: while Redis is healthy the flood must make no decision degraded,
// its own or the attack's.
const (
	floodTenant = "flood"
	floodPath   = "/flood"
)

// flood is a running flood.
type flood struct {
	client *fasthttp.HostClient
	stop   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	sent     int
	degraded []time.Time // when each degraded response came back
	shed     int         // 503 with X-RateLimit-Status: overloaded
	fiveXX   int         // any other 5xx
	errs     int         // no response
}

// FloodResult is what the flood saw.
type FloodResult struct {
	// Conns is the flood's connections, each sending back to back.
	Conns int `json:"conns"`
	// Requests is how many requests the flood sent.
	Requests int `json:"requests"`
	// Degraded counts its degraded responses; DegradedHealthy those that
	// came back before Redis was stalled (a request in flight at the stall
	// is rightly degraded). AttackDegradedHealthy is the same count for
	// the attack's requests sent since the flood started.
	Degraded              int `json:"degraded"`
	DegradedHealthy       int `json:"degraded_healthy"`
	AttackDegradedHealthy int `json:"attack_degraded_healthy"`
	// Shed counts 503 overloaded answers; FiveXX other 5xx; NoReply
	// requests without a response.
	Shed    int `json:"shed"`
	FiveXX  int `json:"five_xx"`
	NoReply int `json:"no_reply"`
	// RedisPingMaxMs is the worst round trip of a probe that PINGed Redis
	// every 5 ms while Redis was healthy under the flood, and
	// RedisCPUStallMs the longest its CPU ran nothing (harness.Probe):
	// whether Redis itself answered within the budget then. nil if the
	// probe failed (ProbeError).
	RedisPingMaxMs  *float64 `json:"redis_ping_max_ms,omitempty"`
	RedisCPUStallMs *float64 `json:"redis_cpu_stall_ms,omitempty"`
	ProbeError      string   `json:"probe_error,omitempty"`
}

// watchRedis starts a probe of the redis-server at addr (harness.Probe, in
// a child process of this binary: see harness.ProbeCommand) and returns
// once it is connected, or failed. The returned func stops it and gives
// what it saw.
func watchRedis(addr string) func() (harness.ProbeResult, error) {
	self, err := os.Executable()
	if err != nil {
		return func() (harness.ProbeResult, error) { return harness.ProbeResult{}, fmt.Errorf("redis probe: %w", err) }
	}
	p, err := harness.StartProbeProcess(context.Background(), self, addr)
	if err != nil {
		return func() (harness.ProbeResult, error) { return harness.ProbeResult{}, err }
	}
	return p.Finish
}

// sawRedis records what the probe of Redis saw in f.
func (f *FloodResult) sawRedis(res harness.ProbeResult, err error) {
	if err != nil {
		f.ProbeError = err.Error()
		return
	}
	f.RedisPingMaxMs, f.RedisCPUStallMs = &res.WorstMs, &res.WorstLateMs
}

// redisNote is "; meanwhile Redis' worst PING took …" for a report line.
func (f *FloodResult) redisNote() string {
	switch {
	case f.RedisPingMaxMs != nil:
		return fmt.Sprintf("; meanwhile Redis' worst PING took %.2f ms and its CPU's worst stall was %.2f ms (one PING every %v: a silence of up to %.2f ms fits it)",
			*f.RedisPingMaxMs, *f.RedisCPUStallMs, harness.ProbeEvery, harness.SilenceFitsMs(*f.RedisPingMaxMs, *f.RedisCPUStallMs))
	case f.ProbeError != "":
		return "; Redis' probe failed: " + f.ProbeError
	}
	return ""
}

// startFlood floods the gateway at addr with conns connections.
func startFlood(addr string, conns int) *flood {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: conns, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	f := &flood{client: c, stop: make(chan struct{})}
	for range conns {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.loop(c)
		}()
	}
	return f
}

func (f *flood) loop(c *fasthttp.HostClient) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + c.Addr + floodPath)
	req.Header.Set("X-Api-Key", chaosKey(floodTenant))
	for {
		select {
		case <-f.stop:
			return
		default:
		}
		err := c.Do(req, resp)
		at := time.Now()
		status := string(resp.Header.Peek("X-Ratelimit-Status"))
		f.mu.Lock()
		f.sent++
		switch {
		case err != nil:
			f.errs++
		case status == "degraded":
			f.degraded = append(f.degraded, at)
		case resp.StatusCode() == fasthttp.StatusServiceUnavailable && status == "overloaded":
			f.shed++
		case resp.StatusCode() >= 500:
			f.fiveXX++
		}
		f.mu.Unlock()
		if err != nil {
			time.Sleep(10 * time.Millisecond) // a refused connection would spin
		}
	}
}

// halt stops the flood and reports it; healthyUntil is when Redis was
// stalled.
func (f *flood) halt(conns int, healthyUntil time.Time) *FloodResult {
	close(f.stop)
	f.wg.Wait()
	f.client.CloseIdleConnections() // the resource sample after must not count them
	f.mu.Lock()
	defer f.mu.Unlock()
	r := &FloodResult{Conns: conns, Requests: f.sent, Degraded: len(f.degraded), Shed: f.shed, FiveXX: f.fiveXX, NoReply: f.errs}
	for _, at := range f.degraded {
		if at.Before(healthyUntil) {
			r.DegradedHealthy++
		}
	}
	return r
}

// degradedHealthy counts the samples sent in [from, until) that came back
// degraded before until; ss is sorted by send time.
func degradedHealthy(ss []sample, from, until time.Time) int {
	n := 0
	for _, s := range ss {
		if !s.at.Before(from) && s.state == stateDegraded && s.at.Add(s.latency).Before(until) {
			n++
		}
	}
	return n
}
