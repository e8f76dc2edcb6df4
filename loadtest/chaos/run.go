package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// chaosTiming is how long a chaos run holds each part of a scenario.
type chaosTiming struct {
	rate          int           // requests per second, every phase
	phase         time.Duration // each steady phase: before, after, each latency step
	stall         time.Duration // SIGSTOP, CLIENT PAUSE
	outage        time.Duration // every Redis node down
	failovers     int           // SENTINEL FAILOVERs in a row
	recoverWithin time.Duration // the bound on getting back to ok
	budget        time.Duration // ratelimit.budget; 0: the gateway's default
	samples       int           // resource samples per measurement, 100ms apart
	flood         int           // connections of the overload scenario's flood
}

// limit is the limited tenant's limit per window: half its share of the
// rate, so it is always over its limit.
func (tm chaosTiming) limit() int { return max(tm.rate/6, 1) }

// chaosSetup is the Redis a scenario runs against.
type chaosSetup int

const (
	setupStandalone  chaosSetup = iota // one redis-server
	setupSentinel                      // primary, 1 replica, 3 sentinels
	setupProxy                         // one redis-server behind the latency proxy
	setupSentinelAOF                   // setupSentinel with appendonly on
	setupCluster                       // 3 primaries + 3 replicas, cluster-require-full-coverage no
)

func (s chaosSetup) String() string {
	switch s {
	case setupSentinel:
		return "sentinel: primary + 1 replica + 3 sentinels"
	case setupProxy:
		return "standalone via latency proxy"
	case setupSentinelAOF:
		return "sentinel (AOF): primary + 1 replica + 3 sentinels"
	case setupCluster:
		return "cluster: 3 primaries + 3 replicas"
	}
	return "standalone"
}

// chaosScenario is one fault injected under load.
type chaosScenario struct {
	name        string
	setup       chaosSetup
	failMode    string // ratelimit.fail_mode; "" is open
	downAtStart bool   // Redis is down when the gateway starts
	outage      bool   // every node goes down: no Redis connection may outlive it
	alone       bool   // never beside another scenario: it loads the whole machine
	consistency string // ratelimit.consistency; "" is exact
	// exactOK: no ok admission may pass a limit (the faults of issue 8,
	// where the gateway must mark what it cannot stand behind).
	exactOK bool
	script  func(r *chaosRun)
}

// chaosEnv is what every scenario shares.
type chaosEnv struct {
	bin      string // the gateway binary
	upstream string // the in-process upstream's address
	tm       chaosTiming
}

// T is what a scenario needs of whoever runs it: a *testing.T under go
// test (TestChaos), or the command's stand-in (scenarioT).
type T interface {
	redistest.TB
	Context() context.Context
}

// chaosRun is one scenario in progress: its Redis, its gateway, its
// attack and the phases marked so far. Scripts drive it.
type chaosRun struct {
	t      T
	tm     chaosTiming
	node   *redistest.Node // standalone and proxy setups
	topo   *redistest.Topo // sentinel setup
	ct     *redistest.ClusterTopo
	proxy  *latencyProxy // proxy setup
	peers  peers         // where the gateway's connections go
	gw     *harness.Gateway
	attack *chaosAttack
	marks  []phaseMark
	before *Resources
	after  *Resources
	flood  *FloodResult // the flood's, where the script ran one
	// bulkOnHealthyShard: the script faulted a shard the bulk tenant is
	// not on, so none of its decisions may degrade.
	bulkOnHealthyShard bool
	notes              []string
	watch              *phaseWatch        // the healthy phase being probed
	seen               map[int]*RedisSeen // what the probes saw, by phase
	// m0 is the gateway's metrics as the attack began: baseline notes
	// what degraded before any fault, by reason.
	m0 map[string]float64
}

// mark starts a phase now.
func (r *chaosRun) mark(name string, fault, heal bool) {
	r.stopWatch() // the phase before ends here, its probes too
	r.marks = append(r.marks, phaseMark{name: name, at: time.Now(), fault: fault, heal: heal})
	r.t.Logf("phase %s", name)
	r.watchPhase(len(r.marks) - 1)
}

// hold lets the load run for d.
func (r *chaosRun) hold(d time.Duration) { time.Sleep(d) }

// baseline is the steady phase before any fault, ending with a resource
// sample.
func (r *chaosRun) baseline() {
	r.mark("before", false, false)
	r.hold(r.tm.phase)
	r.before = r.sample()
	if m, err := scrapeMetrics(r.gw.Admin); err == nil && r.m0 != nil {
		if reasons := degradedReasons(r.m0, m); len(reasons) > 0 {
			r.notes = append(r.notes, "degraded before the fault, by reason "+formatCounts(reasons))
		}
	}
}

// fault starts phase name and injects a fault (inject may be nil).
func (r *chaosRun) fault(name string, inject func()) {
	r.mark(name, true, false)
	if inject != nil {
		inject()
	}
}

// heal runs fix (may be nil), after which Redis is healthy, and starts
// phase name from that moment: it waits for the responses to settle to
// ok (within recoverWithin), then holds the phase.
func (r *chaosRun) heal(name string, fix func()) {
	if fix != nil {
		fix()
	}
	r.mark(name, false, true)
	r.awaitSteady()
	r.hold(r.tm.phase)
}

// blip injects a fault that is over as soon as it is done (SCRIPT
// FLUSH): its phase is both fault and heal.
func (r *chaosRun) blip(name string, inject func()) {
	inject()
	r.mark(name, true, true)
	r.awaitSteady()
	r.hold(r.tm.phase)
}

// awaitSteady waits until responses have been ok for a while since the
// last mark; the verdict on recovery comes from the samples afterwards.
func (r *chaosRun) awaitSteady() {
	since := r.marks[len(r.marks)-1].at
	deadline := time.Now().Add(r.tm.recoverWithin)
	for !r.attack.steady(since, 300*time.Millisecond) {
		if time.Now().After(deadline) {
			r.notes = append(r.notes, fmt.Sprintf("not steadily ok within %v after %q", r.tm.recoverWithin, r.marks[len(r.marks)-1].name))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sample measures the gateway's resources at steady load.
func (r *chaosRun) sample() *Resources {
	res, err := sampleResources(r.gw, r.peers, r.tm.samples)
	if err != nil {
		r.t.Errorf("sample gateway resources: %v", err)
	}
	return res
}

// startRedis starts sc's Redis and returns the gateway's redis section.
func (r *chaosRun) startRedis(sc chaosScenario) chaosRedis {
	r.peers.redis = map[int]bool{}
	switch sc.setup {
	case setupSentinel, setupSentinelAOF:
		r.topo = redistest.Topology(r.t, redistest.Options{Replicas: 1, Sentinels: 3, DownAfter: time.Second,
			AOF: sc.setup == setupSentinelAOF})
		for _, n := range append(r.topo.Nodes(), r.topo.Sentinels()...) {
			r.peers.redis[n.Port()] = true
		}
		rc := chaosRedis{Mode: "sentinel", Addrs: r.topo.SentinelAddrs(), MasterName: r.topo.MasterName()}
		if sc.consistency == "replica" {
			rc.LocalReplicas = []string{r.topo.Replicas()[0].Addr()}
		}
		return rc
	case setupCluster:
		r.ct = redistest.Cluster(r.t, redistest.ClusterOptions{PartialCoverage: true})
		for _, n := range r.ct.Nodes() {
			r.peers.redis[n.Port()] = true
		}
		return chaosRedis{Mode: "cluster", Addrs: r.ct.Addrs()}
	}
	r.node = redistest.Server(r.t)
	addr := r.node.Addr()
	if sc.setup == setupProxy {
		p, err := startLatencyProxy(addr)
		if err != nil {
			r.t.Fatalf("%v", err)
		}
		r.t.Cleanup(func() { p.Close() })
		r.proxy, addr = p, p.Addr()
	}
	r.peers.redis[portOf(addr)] = true
	if sc.downAtStart {
		r.node.Kill()
	}
	return chaosRedis{Mode: "standalone", Addrs: []string{addr}}
}

// runChaos runs one scenario: Redis, the gateway binary on a config
// pointing at it, the attack through every phase of the script, then the
// measurements.
func runChaos(t T, env chaosEnv, sc chaosScenario) ChaosResult {
	r := &chaosRun{t: t, tm: env.tm, peers: peers{upstream: portOf(env.upstream)}}
	cfg := writeChaosConfig(t, sc, r.startRedis(sc), env)
	gw, err := harness.StartGateway(t.Context(), env.bin, cfg)
	if err != nil {
		t.Fatalf("%v", err)
	}
	r.gw = gw
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = gw.Stop()
		}
	})
	if !sc.downAtStart {
		waitDecidingOK(t, gw.Proxy, env.tm.recoverWithin)
	}
	m0, err := scrapeMetrics(gw.Admin)
	if err != nil {
		t.Fatalf("%v", err)
	}
	r.m0 = m0
	r.attack = startChaosAttack("http://"+gw.Proxy, env.tm.rate)
	t.Cleanup(func() { r.attack.stop() }) // a script that failed left it running
	t.Cleanup(r.stopWatch)
	sc.script(r)
	r.stopWatch()
	if r.before != nil {
		if r.after = r.sample(); r.after == nil {
			t.Fatalf("no resource sample after the recovery")
		}
		t.Logf("gateway at steady load before the fault %+v, after the recovery %+v", *r.before, *r.after)
	}
	samples, errs := r.attack.stop()
	end := time.Now()
	m1, err := scrapeMetrics(gw.Admin)
	if err != nil {
		t.Fatalf("%v", err)
	}
	_, warns := gw.Logs.Warnings()
	stopped = true
	if err := gw.Stop(); err != nil {
		t.Errorf("gateway stop: %v", err)
	}
	res := r.result(sc, samples, end, m0, m1)
	res.TransportErrors, res.WarnMsgs = errs, warns
	return res
}

// bulkDegraded picks the bulk tenant's degraded responses.
func bulkDegraded(s *sample) bool { return !s.limited && s.state == stateDegraded }

// result turns the samples and the metrics around the attack into the
// scenario's result.
func (r *chaosRun) result(sc chaosScenario, ss []sample, end time.Time, m0, m1 map[string]float64) ChaosResult {
	slices.SortFunc(ss, func(a, b sample) int { return a.at.Compare(b.at) })
	if len(ss) > 0 && len(r.marks) > 0 && ss[0].at.Before(r.marks[0].at) {
		r.marks[0].at = ss[0].at // the attack started a moment before the first mark
	}
	phases, total := splitPhases(r.marks, ss, end, r.tm.limit())
	for i := range phases {
		phases[i].Redis = r.seen[i]
	}
	if r.flood != nil {
		if i := slices.IndexFunc(r.marks, func(m phaseMark) bool { return m.fault }); i > 0 {
			r.flood.AttackDegradedHealthy = degradedHealthy(ss, r.marks[i-1].at, r.marks[i].at)
		}
	}
	const decisions = "l1gw_ratelimit_decisions_total"
	counted := sumSeries(m1, decisions, `result="degraded"`) - sumSeries(m0, decisions, `result="degraded"`)
	// The flood's decisions are its own to count, not the attack's.
	flooded := `tenant="` + floodTenant + `",result="degraded"`
	counted -= sumSeries(m1, decisions, flooded) - sumSeries(m0, decisions, flooded)
	failMode := sc.failMode
	if failMode == "" {
		failMode = "open"
	}
	tl := timelineOf(sc.name, r.marks, ss, end)
	notes := r.notes
	if okSent, okSure, limit := peakSentOK(ss, chaosWindow), peakAdmittedOK(ss, chaosWindow), r.tm.limit(); okSent > limit && okSure <= limit {
		// What the check cannot tell apart: requests slow enough to be
		// decided in the next window, or an over-admission they hide.
		notes = append(notes, fmt.Sprintf("limited tenant: %d ok admissions sent within one window, past its limit %d, but at most %d certainly decided within one (slow requests: worst %v)",
			okSent, limit, okSure, slowestOK(ss).Round(time.Millisecond)))
	}
	return ChaosResult{
		Scenario: sc.name, Setup: sc.setup.String(), FailMode: failMode, Timeline: &tl,
		Phases: phases, Total: total, Recoveries: recoveries(r.marks, ss),
		PeakLimited: peakAdmitted(ss, chaosWindow), PeakLimitedOK: peakAdmittedOK(ss, chaosWindow),
		Limit: r.tm.limit(), ExactOK: sc.exactOK, BulkOnHealthyShard: r.bulkOnHealthyShard,
		BulkDegraded:        countSamples(ss, bulkDegraded),
		BulkDegradedByPhase: countByPhase(r.marks, ss, bulkDegraded),
		Degraded:            DegradedCheck{Marked: total.Degraded, Counted: int(counted), ByReason: degradedReasons(m0, m1)},
		Before:              r.before, After: r.after, Outage: sc.outage, Notes: notes, Flood: r.flood,
	}
}
