package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// Measurement is one system under one load in one run.
type Measurement struct {
	Run    int    `json:"run"`
	System string `json:"system"`
	// Load is "closed N" (N connections) or "open".
	Load string `json:"load"`
	// Rate is the open loop's requests per second asked; 0 when closed.
	Rate            int           `json:"rate,omitempty"`
	Seconds         float64       `json:"seconds"`
	Responses       int64         `json:"responses"`
	RPS             float64       `json:"rps"`
	Codes           map[int]int64 `json:"status_codes"`
	Degraded        int64         `json:"degraded"`
	TransportErrors int64         `json:"transport_errors"`
	Errors          []string      `json:"errors,omitempty"`
	LimitedSent     int64         `json:"limited_sent"`
	LimitedAdmitted int64         `json:"limited_admitted"`
	// LimitedDegraded are the LimitedAdmitted marked degraded: admitted
	// without Redis' count (fail open), which a limit does not bound.
	LimitedDegraded int64 `json:"limited_admitted_degraded"`
	// Enforced: the system limits the limited tenant, so its admissions
	// marked ok are checked against LimitedLimit.
	Enforced     bool  `json:"enforced"`
	LimitedLimit int64 `json:"limited_limit"`
	// OverAdmitted are the admissions marked ok past LimitedLimit.
	OverAdmitted int64 `json:"over_admitted"`
	// CPU µs per response of the system under test and of redis-server;
	// nil when there is no such process.
	GwCPU    *float64 `json:"gw_cpu_us_per_req"`
	RedisCPU *float64 `json:"redis_cpu_us_per_req"`
	// RedisPingMax is the worst round trip, in ms, of the probe that PINGs
	// redis-server meanwhile (see harness.ProbeCommand): how long Redis itself
	// left a client waiting. nil without Redis. ProbeRealtime: the probe
	// ran at real-time priority, so its own waits for the CPU are not in it.
	RedisPingMax  *float64 `json:"redis_ping_max_ms,omitempty"`
	ProbeRealtime bool     `json:"probe_realtime,omitempty"`
	// Probe is everything the probe saw (when the worst PING was, whether
	// the stop cut it); nil without Redis.
	Probe *harness.ProbeResult `json:"probe,omitempty"`
	// StealSUTMs and StealRunnerMs are the steal time, in ms, that the
	// system under test's CPU and the runner's (Redis') gained over the
	// load: time the host ran something else while they had work. nil
	// when not pinned.
	StealSUTMs    *float64 `json:"steal_sut_ms,omitempty"`
	StealRunnerMs *float64 `json:"steal_runner_ms,omitempty"`
	// TCP is what the host's TCP counters of tcpWatched gained over the
	// load, those that did: segments lost or held up on loopback and sent
	// again. Host-wide: anything else running counts too.
	TCP map[string]int64 `json:"tcp,omitempty"`
	// RedisLatency is Redis' own latency monitor after the load: the worst
	// of each event of its event loop that took latencyThresholdMs or
	// more, in ms by event. Empty when none did; nil without Redis.
	RedisLatency map[string]int64 `json:"redis_latency_ms,omitempty"`
	// RedisCPUStallMax is the longest, in ms, that the probe's sleeps
	// between PINGs overran: how long Redis' CPU ran neither the probe nor,
	// at lower priority, Redis (a stall a PING in flight may miss). nil
	// without Redis.
	RedisCPUStallMax *float64 `json:"redis_cpu_stall_max_ms,omitempty"`
	// DecisionP50 and DecisionP99 are the system's own
	// l1gw_decision_duration_seconds over the load, in ms (the upper bound
	// of the bucket holding each): how long requests waited for their
	// rate-limit decision, apart from the upstream's time and the load
	// generator's. nil for a system that decides nothing.
	DecisionP50 *float64 `json:"decision_p50_ms,omitempty"`
	DecisionP99 *float64 `json:"decision_p99_ms,omitempty"`
	// RedisCallP99 is the gateway's l1gw_redis_call_duration_seconds P99
	// over the load, in ms: a batch's write to its last reply read. A
	// decision's wait is its queueing plus its batch's call.
	RedisCallP99 *float64 `json:"redis_call_p99_ms,omitempty"`
	// BatchSize is the gateway's decisions per call to Redis over the load
	// (l1gw_decision_batch_size), SharedPct the share of them, in %, that
	// shared a script call with others of their log
	// (l1gw_decisions_shared_total). nil for a system without the pipes.
	BatchSize *float64 `json:"batch_size,omitempty"`
	SharedPct *float64 `json:"shared_pct,omitempty"`
	// Open loop only: the latency percentiles and maximum, in ms, from a
	// request's send to its response.
	P50 *float64 `json:"p50_ms,omitempty"`
	P99 *float64 `json:"p99_ms,omitempty"`
	Max *float64 `json:"max_ms,omitempty"`
	// Warnings are the gateway's WARN and ERROR log lines by message,
	// counted from its start to its stop.
	Warnings map[string]int64 `json:"warnings,omitempty"`
	// DegradedByReason is the gateway's l1gw_degraded_decisions_total by
	// reason at its stop (from its /metrics).
	DegradedByReason map[string]int64 `json:"degraded_by_reason,omitempty"`
}

// loadSpec is one load: conns > 0 is a closed loop, else an open loop at
// rate.
type loadSpec struct {
	conns int
	rate  int
}

func (l loadSpec) name() string {
	if l.conns > 0 {
		return fmt.Sprintf("closed %d", l.conns)
	}
	return "open"
}

// runAll pins the CPUs, starts the upstream, measures every selected
// system -runs times and returns the report. progress gets a line per
// measurement.
func runAll(ctx context.Context, o options, progress io.Writer) (*Report, error) {
	pin, err := setupPinning()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this executable (re-run as the forwarder): %w", err)
	}
	dir, err := os.MkdirTemp("", "benchcompare-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	up, err := harness.StartUpstream(upstreamBody)
	if err != nil {
		return nil, err
	}
	defer up.Stop()
	e := &env{opts: o, pin: pin, upstream: up.Addr, self: self, dir: dir}
	rep := newReport(ctx, o, pin)
	for run := 1; run <= o.runs; run++ {
		for _, name := range o.systems {
			sys, ok := findSystem(name)
			if !ok {
				return nil, fmt.Errorf("unknown system %q", name)
			}
			ms, err := measureSystem(ctx, e, sys, run, progress)
			if err != nil {
				return nil, fmt.Errorf("run %d, %s: %w", run, name, err)
			}
			rep.Measurements = append(rep.Measurements, ms...)
		}
	}
	rep.Machine.LoadEnd = harness.LoadAverage()
	rep.summarize()
	return rep, nil
}

// measureSystem measures sys under each closed loop, then under an open
// loop at half the first closed loop's rate, restarting it for each.
func measureSystem(ctx context.Context, e *env, sys system, run int, progress io.Writer) ([]Measurement, error) {
	var out []Measurement
	loads := make([]loadSpec, 0, len(e.opts.conns)+1)
	for _, n := range e.opts.conns {
		loads = append(loads, loadSpec{conns: n})
	}
	loads = append(loads, loadSpec{})
	for _, l := range loads {
		if l.conns == 0 {
			l.rate = max(1, int(out[0].RPS/2))
			if e.opts.openRate > 0 {
				l.rate = e.opts.openRate
			}
		}
		m, err := measure(ctx, e, sys, l)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.name(), err)
		}
		m.Run = run
		out = append(out, m)
		fmt.Fprintf(progress, "benchcompare: run %d/%d %-12s %-10s %8.0f req/s, %d transport errors, %d degraded\n",
			run, e.opts.runs, sys.name, l.name(), m.RPS, m.TransportErrors, m.Degraded)
	}
	return out, nil
}

// measure starts sys (and a fresh redis-server when it needs one), runs
// load against it, samples the processes' CPU around the load and stops
// everything. Any child's unclean exit is an error.
func measure(ctx context.Context, e *env, sys system, load loadSpec) (m Measurement, err error) {
	if e.pin.on() {
		if err := pinSelf(e.pin.runner); err != nil {
			return m, err
		}
	}
	var rs *redisServer
	redisAddr := ""
	if sys.redis {
		if rs, err = startRedis(ctx, e.pin.runner, e.dir); err != nil {
			return m, err
		}
		defer func() { err = errors.Join(err, rs.stop()) }()
		redisAddr = rs.addr
	}
	c, addr, err := sys.start(ctx, e, redisAddr)
	if err != nil {
		return m, err
	}
	var procs cpuProcs
	metricsURL := ""
	if c != nil {
		metricsURL = c.metrics
		defer func() {
			if c.metrics != "" {
				d, serr := degradedByReason(c.metrics)
				m.DegradedByReason, err = d, errors.Join(err, serr)
			}
			err = errors.Join(err, c.stop())
			if _, w := c.out.Warnings(); len(w) > 0 {
				m.Warnings = make(map[string]int64, len(w))
				for k, v := range w {
					m.Warnings[k] = int64(v)
				}
			}
		}()
		procs.sut = c.pid()
		if err := checkPinned(c.pid(), e.pin.sut); err != nil {
			return m, err
		}
	}
	if rs == nil {
		return runLoad(ctx, e, sys, load, addr, procs, metricsURL)
	}
	procs.redis = rs.pid()
	if err := checkPinned(rs.pid(), e.pin.runner); err != nil {
		return m, err
	}
	probe, err := startProbe(ctx, e.self, e.pin.runner, rs.addr)
	if err != nil {
		return m, err
	}
	m, err = runLoad(ctx, e, sys, load, addr, procs, metricsURL)
	res, perr := probe.finish()
	if perr == nil {
		m.RedisPingMax, m.ProbeRealtime, m.RedisCPUStallMax, m.Probe = &res.WorstMs, res.Realtime, &res.WorstLateMs, &res
	}
	spikes, lerr := rs.latencySpikes(ctx)
	if lerr == nil {
		m.RedisLatency = spikes
	}
	return m, errors.Join(err, perr, lerr)
}

// cpuProcs are the processes whose CPU is sampled; 0 is none.
type cpuProcs struct{ sut, redis int }

// sample is the CPU ticks of the processes.
func (p cpuProcs) sample() (sut, redis int64, err error) {
	if p.sut != 0 {
		if sut, err = harness.ProcCPUTicks(p.sut); err != nil {
			return 0, 0, err
		}
	}
	if p.redis != 0 {
		if redis, err = harness.ProcCPUTicks(p.redis); err != nil {
			return 0, 0, err
		}
	}
	return sut, redis, nil
}

// runLoad runs load against addr and turns the outcome into a Measurement.
// metricsURL, if not empty, is the system's /metrics, scraped before and
// after for its decision latency.
func runLoad(ctx context.Context, e *env, sys system, load loadSpec, addr string, procs cpuProcs, metricsURL string) (Measurement, error) {
	m := Measurement{System: sys.name, Load: load.name(), Rate: load.rate, Enforced: sys.enforces, LimitedLimit: e.opts.limitedLimit}
	var decisions0, calls0 buckets
	var batches0 batchCounts
	if metricsURL != "" {
		text, err := scrape(metricsURL)
		if err != nil {
			return m, err
		}
		decisions0, calls0 = parseBuckets(text, decisionMetric), parseBuckets(text, redisCallMetric)
		batches0 = parseBatches(text)
	}
	sut0, redis0, err := procs.sample()
	if err != nil {
		return m, err
	}
	steal0, err := readSteal()
	if err != nil {
		return m, err
	}
	tcp0, err := readTCP()
	if err != nil {
		return m, err
	}
	var t *tally
	var elapsed time.Duration
	if load.conns > 0 {
		t, elapsed, err = closedLoop(ctx, addr, load.conns, e.opts.duration, benchKeys(e.opts.tenants))
	} else {
		t, elapsed, err = openLoopInto(ctx, &m, addr, load.rate, e.opts.duration, benchKeys(e.opts.tenants))
	}
	if err != nil {
		return m, err
	}
	sut1, redis1, err := procs.sample()
	if err != nil {
		return m, err
	}
	steal1, err := readSteal()
	if err != nil {
		return m, err
	}
	tcp1, err := readTCP()
	if err != nil {
		return m, err
	}
	m.TCP = grown(tcp0, tcp1)
	m.StealSUTMs, m.StealRunnerMs = stealMs(steal0, steal1, e.pin.sut), stealMs(steal0, steal1, e.pin.runner)
	m.fill(t, elapsed)
	if v, ok := cpuMicrosPerRequest(sut0, sut1, t.responses); ok && procs.sut != 0 {
		m.GwCPU = &v
	}
	if v, ok := cpuMicrosPerRequest(redis0, redis1, t.responses); ok && procs.redis != 0 {
		m.RedisCPU = &v
	}
	if metricsURL != "" {
		text, err := scrape(metricsURL)
		if err != nil {
			return m, err
		}
		if p50, p99, ok := quantiles(decisions0, parseBuckets(text, decisionMetric)); ok {
			m.DecisionP50, m.DecisionP99 = &p50, &p99
		}
		if _, p99, ok := quantiles(calls0, parseBuckets(text, redisCallMetric)); ok {
			m.RedisCallP99 = &p99
		}
		if size, shared, ok := batches0.over(parseBatches(text)); ok {
			m.BatchSize, m.SharedPct = &size, &shared
		}
	}
	return m, nil
}

// openLoopInto runs the open loop and puts its latencies into m.
func openLoopInto(ctx context.Context, m *Measurement, addr string, rate int, d time.Duration, keys []string) (*tally, time.Duration, error) {
	t, lat, elapsed, err := openLoop(ctx, addr, rate, d, keys)
	if err != nil {
		return nil, 0, err
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		ptr := func(d time.Duration) *float64 { v := harness.Ms(d); return &v }
		m.P50, m.P99, m.Max = ptr(nearestRank(lat, 0.50)), ptr(nearestRank(lat, 0.99)), ptr(lat[len(lat)-1])
	}
	return t, elapsed, nil
}

// nearestRank is the q-quantile of sorted (not empty) by the nearest-rank
// method: the smallest value with at least q of them at or below it.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// LimitedOK are the limited tenant's admissions marked ok: those the
// limit bounds.
func (m *Measurement) LimitedOK() int64 { return m.LimitedAdmitted - m.LimitedDegraded }

// fill copies the tally into m.
func (m *Measurement) fill(t *tally, elapsed time.Duration) {
	m.Seconds = elapsed.Seconds()
	m.Responses = t.responses
	if m.Seconds > 0 {
		m.RPS = float64(t.responses) / m.Seconds
	}
	m.Codes = t.codes
	m.Degraded = t.degraded
	m.TransportErrors = t.transportErrors
	m.Errors = t.errors
	m.LimitedSent = t.limitedSent
	m.LimitedAdmitted, m.LimitedDegraded = t.limitedAdmitted, t.limitedDegraded
	if ok := m.LimitedOK(); m.Enforced && ok > m.LimitedLimit {
		m.OverAdmitted = ok - m.LimitedLimit
	}
}

// upstreamBody is what the in-process upstream answers.
const upstreamBody = "hello from the l1gw bench-compare upstream\n"
