package main

import (
	"fmt"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// failoverWait bounds the sentinels' election of a new primary.
const failoverWait = 30 * time.Second

// slowNetwork are the latency proxy's steps.
var slowNetwork = []time.Duration{5 * time.Millisecond, 30 * time.Millisecond, 200 * time.Millisecond}

// chaosScenarios are the scenarios (1)–(9), in its order, then the
// full outage again with fail_mode local to measure its over-admission,
// then a primary stall under overload.
func chaosScenarios() []chaosScenario {
	return append([]chaosScenario{
		{name: "1-primary-stall", setup: setupSentinel, script: scriptStall},
		{name: "2-client-pause-write", setup: setupStandalone, script: scriptPauseWrite},
		{name: "3-primary-kill-failover", setup: setupSentinel, script: scriptKillPrimary},
		{name: "4-sentinel-failover-repeated", setup: setupSentinel, script: scriptFailovers},
		{name: "5-replica-kill", setup: setupSentinel, script: scriptKillReplica},
		{name: "6-all-down", setup: setupSentinel, outage: true, script: scriptAllDown},
		{name: "7-script-flush-restart", setup: setupStandalone, script: scriptFlushRestart},
		{name: "8-slow-network", setup: setupProxy, script: scriptSlowNetwork},
		{name: "9-down-at-start", setup: setupStandalone, downAtStart: true, script: scriptDownAtStart},
		{name: "10-all-down-local", setup: setupStandalone, failMode: "local", outage: true, script: scriptOutage},
		{name: "11-overload-stall", setup: setupStandalone, alone: true, script: scriptOverloadStall},
	}, faultScenarios()...)
}

// scriptOverloadStall: a flood brings the gateway to its limit while Redis
// is healthy (phase overload: nothing may degrade, and a probe of Redis
// says how promptly it answered), then Redis stalls (SIGSTOP) under the
// flood and resumes; the flood runs to the end.
// Standalone: no sentinel can mistake a starved machine for a dead primary.
func scriptOverloadStall(r *chaosRun) {
	r.baseline()
	r.mark("overload", false, false)
	overload := len(r.marks) - 1
	watched := watchRedis(r.node.Addr())
	f := startFlood(r.gw.Proxy, r.tm.flood)
	r.hold(r.tm.phase)
	probe, err := watched()
	r.saw(overload, []string{r.node.Addr()}, nil, func() (harness.ProbeResult, error) { return probe, err })
	r.fault("overload+stall", r.node.Stall)
	r.hold(r.tm.stall)
	r.heal("after", r.node.Resume)
	r.flood = f.halt(r.tm.flood, r.marks[len(r.marks)-2].at)
	r.flood.sawRedis(probe, err)
}

// scriptStall: SIGSTOP on the primary, SIGCONT after tm.stall. Past the
// sentinels' down-after (1 s) they fail over meanwhile.
func scriptStall(r *chaosRun) {
	r.baseline()
	p := r.topo.Primary()
	r.fault("stall", p.Stall)
	r.hold(r.tm.stall)
	r.heal("after", p.Resume)
}

// scriptPauseWrite: CLIENT PAUSE WRITE from another client; PING stays
// green, so nothing fails over. CLIENT UNPAUSE ends it after tm.stall.
func scriptPauseWrite(r *chaosRun) {
	r.baseline()
	c := r.node.Client(r.t)
	ctx := r.t.Context()
	r.fault("pause-write", func() {
		if err := c.Do(ctx, "CLIENT", "PAUSE", (r.tm.stall + 10*time.Second).Milliseconds(), "WRITE").Err(); err != nil {
			r.t.Fatalf("CLIENT PAUSE: %v", err)
		}
	})
	r.hold(r.tm.stall)
	r.heal("after", func() {
		if err := c.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
			r.t.Fatalf("CLIENT UNPAUSE: %v", err)
		}
	})
}

// scriptKillPrimary: SIGKILL on the primary; healthy once the sentinels
// agree on the promoted replica.
func scriptKillPrimary(r *chaosRun) {
	r.baseline()
	old := r.topo.Primary()
	r.fault("primary-killed", old.Kill)
	r.heal("after", func() { r.topo.WaitPrimary(r.t, old.Addr(), failoverWait) })
}

// scriptFailovers: SENTINEL FAILOVER tm.failovers times. Redis is healthy
// again once the demoted primary is a replica of the new one, synced
// (about 10 s; its full resync forks the new primary): so the next
// failover has a replica to promote, and a budget missed during the
// resync counts in the fault's phase, not as a late recovery.
func scriptFailovers(r *chaosRun) {
	r.baseline()
	for i := range r.tm.failovers {
		r.fault(fmt.Sprintf("failover-%d", i+1), func() { r.topo.Failover(r.t) })
		r.heal(fmt.Sprintf("after-%d", i+1), func() { r.topo.WaitReplicas(r.t) })
	}
}

// scriptKillReplica: SIGKILL on the replica, restarted after a phase.
func scriptKillReplica(r *chaosRun) {
	r.baseline()
	rep := r.topo.Replicas()[0]
	r.fault("replica-killed", rep.Kill)
	r.hold(r.tm.phase)
	r.heal("after", func() { rep.Restart(r.t) })
}

// scriptAllDown: every data node killed for tm.outage (the sentinels stay
// up and keep naming the primary: no replica is left to promote), then the
// primary restarted, then the replica, synced: healthy.
func scriptAllDown(r *chaosRun) {
	r.baseline()
	p, reps := r.topo.Primary(), r.topo.Replicas()
	r.fault("all-down", func() {
		for _, n := range append([]*redistest.Node{p}, reps...) {
			n.Kill()
		}
	})
	r.hold(r.tm.outage)
	r.heal("after", func() {
		p.Restart(r.t)
		for _, n := range reps {
			n.Restart(r.t)
		}
	})
}

// scriptFlushRestart: SCRIPT FLUSH (the next EVALSHA gets NOSCRIPT), then
// a restart: SIGTERM, and the server started again on its port.
func scriptFlushRestart(r *chaosRun) {
	r.baseline()
	c := r.node.Client(r.t)
	r.blip("script-flushed", func() {
		if err := c.ScriptFlush(r.t.Context()).Err(); err != nil {
			r.t.Fatalf("SCRIPT FLUSH: %v", err)
		}
	})
	r.fault("restart", r.node.Stop)
	r.heal("after", func() { r.node.Restart(r.t) })
}

// scriptSlowNetwork: every reply from Redis delayed by 5, 30 and 200 ms,
// one phase each, then no delay.
func scriptSlowNetwork(r *chaosRun) {
	r.baseline()
	for _, d := range slowNetwork {
		r.fault(fmt.Sprintf("latency-%dms", d.Milliseconds()), func() { r.proxy.SetLatency(d) })
		r.hold(r.tm.phase)
	}
	r.heal("after", func() { r.proxy.SetLatency(0) })
}

// scriptDownAtStart: the gateway started while Redis was down; Redis
// starts after a phase.
func scriptDownAtStart(r *chaosRun) {
	r.fault("down", nil)
	r.hold(r.tm.phase)
	r.heal("after", func() { r.node.Restart(r.t) })
}

// scriptOutage: the standalone server killed for tm.outage, then
// restarted.
func scriptOutage(r *chaosRun) {
	r.baseline()
	r.fault("all-down", r.node.Kill)
	r.hold(r.tm.outage)
	r.heal("after", func() { r.node.Restart(r.t) })
}
