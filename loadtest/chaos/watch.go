package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// RedisSeen is what probes of the healthy Redis nodes the tenants'
// decisions go to saw during a phase (harness.Probe: a PING every 5 ms
// from a real-time thread). It tells a Redis that answered late on its own
// account, or a CPU that ran nothing, from a gateway that degraded or
// recovered late on its own. Probed: the phase before any fault, every
// phase from a heal on, and in a Cluster's fault phases the bulk tenant's
// primary when the fault is on another shard (none of its decisions may
// degrade then).
type RedisSeen struct {
	// Nodes are the addresses probed: the standalone node, the Sentinel
	// primary, or the Cluster primaries of both tenants.
	Nodes []string `json:"nodes,omitempty"`
	// Probed is how many of them were probed to the end.
	Probed int `json:"probed"`
	// PingMaxMs is the worst PING round trip over those; CPUStallMs the
	// longest a probe's sleep overran, the CPU running nothing of it.
	PingMaxMs  float64 `json:"ping_max_ms"`
	CPUStallMs float64 `json:"cpu_stall_ms"`
	// PingMaxAtMs is when the worst PING was sent, in ms since its
	// probe's first: at 0, the probe's own first PING.
	PingMaxAtMs float64 `json:"ping_max_at_ms"`
	// Error says why a probe failed, or why no node could be named.
	Error string `json:"error,omitempty"`
}

// phaseWatch is the probing of one phase in progress.
type phaseWatch struct {
	phase   int           // index in chaosRun.marks
	started chan struct{} // closed once the fields below are set
	addrs   []string
	stops   []func() (harness.ProbeResult, error)
	err     error
}

// watchPhase starts the probes of phase i (an index in marks) where it
// has healthy nodes to probe. They start in the background (naming the
// nodes, a process per node): the script's next step, a fault or the wait
// for recovery, does not wait for them.
func (r *chaosRun) watchPhase(i int) {
	m := r.marks[i]
	healthy := m.name == "before" || m.heal
	if !healthy && r.ct == nil {
		return
	}
	w := &phaseWatch{phase: i, started: make(chan struct{})}
	go func() {
		defer close(w.started)
		if healthy {
			w.addrs, w.err = r.healthyNodes()
		} else {
			w.addrs, w.err = r.bystanders()
		}
		w.stops = make([]func() (harness.ProbeResult, error), len(w.addrs))
		var wg sync.WaitGroup
		for k, a := range w.addrs {
			wg.Go(func() { w.stops[k] = watchRedis(a) })
		}
		wg.Wait()
	}()
	r.watch = w
}

// stopWatch ends the running probes, if any, and records what they saw
// against their phase.
func (r *chaosRun) stopWatch() {
	w := r.watch
	if w == nil {
		return
	}
	r.watch = nil
	<-w.started
	if len(w.addrs) == 0 && w.err == nil {
		return // nothing to probe in this phase
	}
	r.saw(w.phase, w.addrs, w.err, w.stops...)
}

// saw records against phase what the probes of addrs saw (err: why not
// every node could be named).
func (r *chaosRun) saw(phase int, addrs []string, err error, stops ...func() (harness.ProbeResult, error)) {
	seen := &RedisSeen{Nodes: addrs}
	errs := []error{err}
	for _, stop := range stops {
		res, err := stop()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		seen.Probed++
		if res.WorstMs > seen.PingMaxMs {
			seen.PingMaxMs, seen.PingMaxAtMs = res.WorstMs, res.WorstAtMs
		}
		seen.CPUStallMs = max(seen.CPUStallMs, res.WorstLateMs)
	}
	if err := errors.Join(errs...); err != nil {
		seen.Error = err.Error()
	}
	if r.seen == nil {
		r.seen = map[int]*RedisSeen{}
	}
	r.seen[phase] = seen
}

// bystanders are, in a Cluster fault phase, the bulk tenant's primary when
// it is not the limited tenant's (the scripts fault the limited tenant's
// shard): a node that must stay healthy meanwhile.
func (r *chaosRun) bystanders() ([]string, error) {
	bulk, err := r.ct.OwnerNow("{" + bulkTenant + "}")
	if err != nil {
		return nil, err
	}
	limited, err := r.ct.OwnerNow("{" + limitedTenant + "}")
	if err != nil || limited == bulk {
		return nil, err
	}
	return []string{bulk.Addr()}, nil
}

// healthyNodes are the Redis nodes the tenants' decisions go to now.
func (r *chaosRun) healthyNodes() ([]string, error) {
	switch {
	case r.node != nil:
		return []string{r.node.Addr()}, nil
	case r.topo != nil:
		p, err := r.topo.PrimaryNow()
		if err != nil {
			return nil, err
		}
		return []string{p.Addr()}, nil
	case r.ct != nil:
		var addrs []string
		for _, tenant := range []string{bulkTenant, limitedTenant} {
			p, err := r.ct.OwnerNow("{" + tenant + "}")
			if err != nil {
				return addrs, err
			}
			if !slices.Contains(addrs, p.Addr()) {
				addrs = append(addrs, p.Addr())
			}
		}
		return addrs, nil
	}
	return nil, nil
}

// redisNote is "; meanwhile Redis' probes saw …" for a failure line: what
// the probes saw in the phases named, or in every probed phase when none
// is named; "" when none was probed.
func (res *ChaosResult) redisNote(names ...string) string {
	var parts []string
	for _, p := range res.Phases {
		if p.Redis == nil || (len(names) > 0 && !slices.Contains(names, p.Name)) {
			continue
		}
		parts = append(parts, p.Name+": "+p.Redis.String())
	}
	if len(parts) == 0 {
		return ""
	}
	return "; meanwhile Redis' probes saw, " + strings.Join(parts, "; ")
}

// String is "worst PING 1.20 ms (350 ms in), CPU stall 0.30 ms", with the error of
// a probe that failed, or "no probe (why)".
func (s *RedisSeen) String() string {
	if s.Probed == 0 {
		return "no probe (" + s.Error + ")"
	}
	out := fmt.Sprintf("worst PING %.2f ms (%.0f ms in), CPU stall %.2f ms", s.PingMaxMs, s.PingMaxAtMs, s.CPUStallMs)
	if s.Error != "" {
		out += " (probe: " + s.Error + ")"
	}
	return out
}
