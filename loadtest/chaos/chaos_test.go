//go:build chaos

package main

import (
	"context"
	"flag"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// The chaos suite's flags: go test ./loadtest -run TestChaos -args -chaos.full.
var (
	chaosFull = flag.Bool("chaos.full", false, "chaos suite at full length (make chaos): 5 s phases and stall, 30 s outage")
	chaosRate = flag.Int("chaos.rate", 300, "chaos suite: requests per second through every phase")
	chaosOut  = flag.String("chaos.out", "", `chaos suite: directory for chaos.md and chaos.json (default out/ in the full form; the short form writes none)`)
)

// Growth allowed across a scenario, at steady load before and after.
const (
	goroutineSlack = 20
	fdSlack        = 10
)

// chaosTimingFor is the full form's timing, or the short one make test
// runs: every scenario, 1 s phases, a 2 s outage.
func chaosTimingFor(full bool, rate int) chaosTiming {
	if full {
		return chaosTiming{rate: rate, phase: 5 * time.Second, stall: 5 * time.Second, outage: 30 * time.Second,
			failovers: 3, recoverWithin: 15 * time.Second, samples: 5, flood: 128}
	}
	// The short form runs inside go test -race ./..., every package at once
	// on a loaded machine: a 10 ms budget would be missed by CPU stalls
	// alone, and a degraded response long after a heal would read as a
	// failed recovery. It checks correctness, not latency: a larger budget
	// keeps the faults (stalls, kills) the only cause of degradation.
	return chaosTiming{rate: rate, phase: time.Second, stall: time.Second, outage: 2 * time.Second,
		failovers: 2, recoverWithin: 15 * time.Second, samples: 3, budget: 250 * time.Millisecond, flood: 64}
}

// TestChaos runs the gateway binary against real Redis processes under a
// constant load while each scenario injects its fault, and checks what is
// correctness: no 5xx, no request without a response, every decision
// marked, the marked degraded count equal to the gateway's, recovery to
// ok within a generous bound, the local fail mode's over-admission within
// one limit per window, no goroutine or fd growth, no degraded decision
// under overload while Redis is healthy. Latencies and recovery times are
// reported against the targets, never asserted. The short form
// runs the scenarios two at a time (but those that load the whole
// machine, alone); the full form one by one.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis, Sentinel and the gateway binary under load")
	}
	tm := chaosTimingFor(*chaosFull, *chaosRate)
	if tm.rate < 1 || tm.rate > maxRate {
		t.Fatalf("-chaos.rate %d; want 1 to %d", tm.rate, maxRate)
	}
	bin := buildGateway(t)
	up, err := harness.StartUpstream(upstreamBody)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Stop)
	env := chaosEnv{bin: bin, upstream: up.Addr, tm: tm}
	rep := newChaosReport(t.Context(), bin, tm, *chaosFull)
	scenarios := chaosScenarios()
	results := make([]*ChaosResult, len(scenarios))
	var mu sync.Mutex
	t.Cleanup(func() { finishChaos(t, rep, results) }) // after every subtest
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			if !*chaosFull && !sc.alone {
				t.Parallel() // the scenarios that stay run first, alone
			}
			res := runChaos(t, env, sc)
			mu.Lock()
			results[i] = &res
			mu.Unlock()
			checkChaos(t, tm, &res)
		})
	}
}

// newChaosReport starts the report: the machine, and how to repeat the run.
func newChaosReport(ctx context.Context, bin string, tm chaosTiming, full bool) *ChaosReport {
	rep := &ChaosReport{Machine: describeMachine(ctx, bin), Form: "short", Rate: tm.rate, Limit: tm.limit(),
		Command: "make test-chaos (go test -race -count=1 -tags chaos -run '^TestChaos$' ./loadtest)"}
	if full {
		rep.Form = "full"
		rep.Command = fmt.Sprintf("make chaos (go test -count=1 -timeout 30m -v -tags chaos -run '^TestChaos$' ./loadtest -args -chaos.full -chaos.rate %d)", tm.rate)
	}
	// The binary is built from the work tree: name its commit.
	if b, err := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		rep.Machine.Gateway = "l1gw " + strings.TrimSpace(string(b))
	}
	return rep
}

// finishChaos prints the report and, in the full form or with
// -chaos.out, writes it.
func finishChaos(t *testing.T, rep *ChaosReport, results []*ChaosResult) {
	for _, res := range results {
		if res != nil {
			rep.Results = append(rep.Results, *res)
		}
	}
	md := rep.Markdown()
	fmt.Println(md)
	dir := *chaosOut
	if dir == "" && *chaosFull {
		dir = "out"
	}
	if dir == "" {
		return
	}
	if err := rep.write(dir, md); err != nil {
		t.Error(err)
		return
	}
	t.Logf("wrote %s/chaos.md and chaos.json", dir)
}

// checkChaos asserts what is correctness in a scenario's result.
func checkChaos(t *testing.T, tm chaosTiming, res *ChaosResult) {
	t.Helper()
	total := res.Total
	if n := fiveXX(total.StatusCodes); n > 0 {
		t.Errorf("%d responses with a 5xx status (%s); want none", n, formatCodes(total.StatusCodes))
	}
	if n := total.StatusCodes["0"]; n > 0 {
		t.Errorf("%d requests without a response (%v); want none", n, res.TransportErrors)
	}
	if total.Unmarked > 0 {
		t.Errorf("%d responses without X-RateLimit-Status ok|degraded; want none", total.Unmarked)
	}
	if d := res.Degraded; d.Marked != d.Counted {
		t.Errorf("got %d responses marked degraded; the gateway counted %d degraded decisions", d.Marked, d.Counted)
	}
	for _, rec := range res.Recoveries {
		if rec.Ms == nil || *rec.Ms > float64(tm.recoverWithin.Milliseconds()) {
			t.Errorf("after %q: not back to X-RateLimit-Status ok within %v (recovery %v ms)", rec.After, tm.recoverWithin, fmtMs(rec.Ms))
		}
	}
	if res.FailMode == "local" {
		checkLocal(t, tm.limit(), res)
	}
	if res.BulkOnHealthyShard && res.BulkDegraded > 0 {
		t.Errorf("bulk tenant, on a healthy shard: %d degraded responses while another shard failed over; want 0", res.BulkDegraded)
	}
	if _, unmarked := res.over(); res.ExactOK && unmarked > 0 {
		t.Errorf("limited tenant: %d admissions marked ok within one window, %d past its limit %d; want none unmarked",
			res.PeakLimitedOK, unmarked, res.Limit)
	}
	if res.Flood != nil {
		checkFlood(t, res)
	}
	if g := res.growth(); g != "" {
		t.Errorf("growth at steady load, before the fault → after the recovery: %s; want at most +%d goroutines, +%d fds or connections",
			g, goroutineSlack, fdSlack)
	}
	for _, n := range res.Notes {
		t.Log(n)
	}
}

// checkLocal: with fail_mode local and one gateway, no phase admits more
// than one limit past what an exact limiter could, and no 1 s window
// holds more than two limits (the window Redis filled, and the local one
// starting empty). The slack is the decisions a few ms of client-side
// timestamp jitter can move across a window's edge.
func checkLocal(t *testing.T, limit int, res *ChaosResult) {
	t.Helper()
	slack := max(3, limit/10)
	for _, p := range res.Phases {
		if p.Limited.Over > limit {
			t.Errorf("phase %s: limited tenant admitted %d, %d over the bound %d; want at most one limit (%d) over",
				p.Name, p.Limited.Admitted, p.Limited.Over, p.Limited.Bound, limit)
		}
	}
	if res.PeakLimited > 2*limit+slack {
		t.Errorf("limited tenant: %d admitted within one window; want at most 2 × %d + %d", res.PeakLimited, limit, slack)
	}
}

// checkFlood: while Redis was healthy, the flood made no decision
// degraded, neither its own nor the attack's; it got no 5xx but honest
// sheds, and an answer to every request.
func checkFlood(t *testing.T, res *ChaosResult) {
	t.Helper()
	f := res.Flood
	t.Logf("flood: %+v", *f)
	if f.DegradedHealthy > 0 {
		t.Errorf("flood: %d of its decisions came back degraded while Redis was healthy; want 0", f.DegradedHealthy)
	}
	if f.AttackDegradedHealthy > 0 {
		t.Errorf("overload: %d of the attack's decisions came back degraded while Redis was healthy; want 0", f.AttackDegradedHealthy)
	}
	if f.FiveXX > 0 || f.NoReply > 0 {
		t.Errorf("flood: %d 5xx other than sheds and %d requests without a response; want none", f.FiveXX, f.NoReply)
	}
}

func fmtMs(v *float64) string {
	if v == nil {
		return "never"
	}
	return fmt.Sprintf("%.0f", *v)
}
