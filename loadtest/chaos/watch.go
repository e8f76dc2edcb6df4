package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// RedisSeen is what probes of the Redis nodes the tenants' decisions go to
// saw during a phase in which Redis was healthy (harness.Probe: a PING
// every 5 ms from a real-time thread). It tells a Redis that answered late
// on its own account, or a CPU that ran nothing, from a gateway that
// degraded or recovered late on its own. Probed: the phase before any
// fault, and every phase from a heal on.
type RedisSeen struct {
	// Nodes are the addresses probed: the standalone node, the Sentinel
	// primary, or the Cluster primaries of both tenants.
	Nodes []string `json:"nodes,omitempty"`
	// PingMaxMs is the worst PING round trip over them; CPUStallMs the
	// longest a probe's sleep overran, the CPU running nothing of it.
	PingMaxMs  float64 `json:"ping_max_ms"`
	CPUStallMs float64 `json:"cpu_stall_ms"`
	// Error says why a probe failed, or why no node could be named.
	Error string `json:"error,omitempty"`
}

// phaseWatch is the probing of one phase in progress.
type phaseWatch struct {
	phase int // index in chaosRun.marks
	addrs []string
	stops []func() (harness.ProbeResult, error)
	err   error
}

// watchPhase ends the probes of the phase before, recording what they
// saw, and starts those of phase i (an index in marks) when it is healthy.
func (r *chaosRun) watchPhase(i int) {
	r.stopWatch()
	if m := r.marks[i]; m.name != "before" && !m.heal {
		return
	}
	addrs, err := r.healthyNodes()
	w := &phaseWatch{phase: i, addrs: addrs, err: err}
	for _, a := range addrs {
		w.stops = append(w.stops, watchRedis(a))
	}
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
	seen := &RedisSeen{Nodes: w.addrs}
	errs := []error{w.err}
	for _, stop := range w.stops {
		res, err := stop()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		seen.PingMaxMs = max(seen.PingMaxMs, res.WorstMs)
		seen.CPUStallMs = max(seen.CPUStallMs, res.WorstLateMs)
	}
	if err := errors.Join(errs...); err != nil {
		seen.Error = err.Error()
	}
	if r.seen == nil {
		r.seen = map[int]*RedisSeen{}
	}
	r.seen[w.phase] = seen
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

// String is "worst PING 1.20 ms, CPU stall 0.30 ms", with the probe's
// error if it had one.
func (s *RedisSeen) String() string {
	out := fmt.Sprintf("worst PING %.2f ms, CPU stall %.2f ms", s.PingMaxMs, s.CPUStallMs)
	if s.Error != "" {
		out += " (probe: " + s.Error + ")"
	}
	return out
}
