package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// timingFor is the full form's timing, or the short one make test runs:
// every scenario, 1 s phases, a 2 s outage.
func timingFor(full bool, rate int) chaosTiming {
	if full {
		return chaosTiming{rate: rate, phase: 5 * time.Second, stall: 5 * time.Second, outage: 30 * time.Second,
			failovers: 3, recoverWithin: 15 * time.Second, samples: 5, flood: 128}
	}
	// The short form runs beside every other package's tests on a loaded
	// machine: a 10 ms budget would be missed by CPU stalls alone, and a
	// degraded response long after a heal would read as a failed recovery.
	// It checks correctness, not latency: a larger budget keeps the faults
	// (stalls, kills) the only cause of degradation.
	return chaosTiming{rate: rate, phase: time.Second, stall: time.Second, outage: 2 * time.Second,
		failovers: 2, recoverWithin: 15 * time.Second, samples: 3, budget: 250 * time.Millisecond, flood: 64}
}

// suite is one run of the chaos suite: the gateway binary, the in-process
// upstream every scenario forwards to, and the report the scenarios fill.
type suite struct {
	env chaosEnv
	up  *harness.Upstream
	mu  sync.Mutex
	rep *ChaosReport
	res []*ChaosResult // by scenario index; nil until it ran
}

// newSuite starts the upstream and the report. command repeats the run.
func newSuite(ctx context.Context, bin string, tm chaosTiming, full bool, command string, n int) (*suite, error) {
	if tm.rate < 1 || tm.rate > harness.MaxRate {
		return nil, fmt.Errorf("rate %d; want 1 to %d", tm.rate, harness.MaxRate)
	}
	up, err := harness.StartUpstream(harness.UpstreamBody)
	if err != nil {
		return nil, err
	}
	rep := &ChaosReport{Machine: harness.DescribeMachine(ctx, bin), Form: "short", Rate: tm.rate, Limit: tm.limit(), Command: command}
	if full {
		rep.Form = "full"
	}
	var tree string
	if b, err := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		tree = strings.TrimSpace(string(b))
	}
	rep.Machine.Gateway = gatewayName(rep.Machine.Gateway, bin, tree)
	return &suite{env: chaosEnv{bin: bin, upstream: up.Addr, tm: tm}, up: up, rep: rep, res: make([]*ChaosResult, n)}, nil
}

// run runs scenario i under t, records its result with the checks it
// failed, and reports each failure to t. A scenario that stops early (t's
// Fatalf) records nothing.
func (s *suite) run(t T, i int, sc chaosScenario) {
	res := runChaos(t, s.env, sc)
	res.Failures = check(s.env.tm, &res)
	s.mu.Lock()
	s.res[i] = &res
	s.mu.Unlock()
	if f := res.Flood; f != nil {
		b, _ := json.Marshal(f) // not %+v: it prints the pointer fields' addresses
		t.Logf("flood: %s", b)
	}
	for _, n := range res.Notes {
		t.Logf("%s", n)
	}
	for _, f := range res.Failures {
		t.Errorf("%s", f)
	}
}

// report is the report of the scenarios that ran, in suite order; the
// upstream stops.
func (s *suite) report() *ChaosReport {
	s.up.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, res := range s.res {
		if res != nil {
			s.rep.Results = append(s.rep.Results, *res)
		}
	}
	return s.rep
}

// selectScenarios picks the scenarios named in list (comma-separated), or
// all of them for "all".
func selectScenarios(list string) ([]chaosScenario, error) {
	all := chaosScenarios()
	if list == "all" {
		return all, nil
	}
	var out []chaosScenario
	for _, name := range strings.Split(list, ",") {
		i := slices.IndexFunc(all, func(sc chaosScenario) bool { return sc.name == strings.TrimSpace(name) })
		if i < 0 {
			names := make([]string, len(all))
			for j, sc := range all {
				names[j] = sc.name
			}
			return nil, fmt.Errorf("no scenario %q; the scenarios: %s", name, strings.Join(names, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// failed records every error scenario i reported as its failures: those
// of check and those that stopped it early, when it recorded no result.
func (s *suite) failed(i int, sc chaosScenario, errs []string) {
	if len(errs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.res[i] == nil {
		s.res[i] = &ChaosResult{Scenario: sc.name, Setup: sc.setup.String()}
	}
	s.res[i].Failures = errs
}

// gatewayName is what the report calls the gateway: the binary's own
// version (make build stamps its commit). A binary without one ("l1gw
// dev": a plain go build; "unknown": `bin version` failed) is named by its
// path and the work tree's commit (tree, "" if unknown), which it was
// likely built from, never by the tree's commit alone: a -bin from
// elsewhere would be misnamed.
func gatewayName(version, bin, tree string) string {
	if version != "l1gw dev" && version != "unknown" {
		return version
	}
	if tree == "" {
		return fmt.Sprintf("%s (%s)", version, bin)
	}
	return fmt.Sprintf("%s (%s; work tree at %s)", version, bin, tree)
}
