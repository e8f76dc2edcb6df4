package main

import (
	"fmt"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// Growth allowed across a scenario, at steady load before and after.
const (
	goroutineSlack = 20
	fdSlack        = 10
)

// check lists what breaks correctness in a scenario's result: a 5xx, a
// request without a response, an unmarked decision, a marked degraded
// count other than the gateway's, no recovery to ok within the bound, the
// local fail mode's over-admission past one limit per window, goroutine
// or fd growth, a degraded decision under overload while Redis was
// healthy. Latencies and recovery times are reported against the issue's
// targets, never checked: they are timings.
func check(tm chaosTiming, res *ChaosResult) []string {
	var fails []string
	failf := func(format string, args ...any) { fails = append(fails, fmt.Sprintf(format, args...)) }
	total := res.Total
	if n := fiveXX(total.StatusCodes); n > 0 {
		failf("%d responses with a 5xx status (%s); want none", n, harness.FormatCodes(total.StatusCodes))
	}
	if n := total.StatusCodes["0"]; n > 0 {
		failf("%d requests without a response (%v); want none", n, res.TransportErrors)
	}
	if total.Unmarked > 0 {
		failf("%d responses without X-RateLimit-Status ok|degraded; want none", total.Unmarked)
	}
	if d := res.Degraded; d.Marked != d.Counted {
		failf("got %d responses marked degraded; the gateway counted %d degraded decisions", d.Marked, d.Counted)
	}
	for _, rec := range res.Recoveries {
		if rec.Ms == nil || *rec.Ms > float64(tm.recoverWithin.Milliseconds()) {
			failf("after %q: not back to X-RateLimit-Status ok within %v (recovery %v ms)%s", rec.After, tm.recoverWithin, fmtMs(rec.Ms), res.redisNote(rec.After))
		}
	}
	if res.FailMode == "local" {
		fails = append(fails, checkLocal(tm.limit(), res)...)
	}
	if res.BulkOnHealthyShard && res.BulkDegraded > 0 {
		failf("bulk tenant, on a healthy shard: %d degraded responses (by phase: %s); want 0 in every phase%s",
			res.BulkDegraded, phaseCounts(res.BulkDegradedByPhase), res.redisNote())
	}
	if _, unmarked := res.over(); res.ExactOK && unmarked > 0 {
		failf("limited tenant: %d admissions marked ok within one window, %d past its limit %d; want none unmarked",
			res.PeakLimitedOK, unmarked, res.Limit)
	}
	if res.Flood != nil {
		fails = append(fails, checkFlood(res.Flood)...)
	}
	if g := res.growth(); g != "" {
		failf("growth at steady load, before the fault → after the recovery: %s; want at most +%d goroutines, +%d fds or connections",
			g, goroutineSlack, fdSlack)
	}
	return fails
}

// checkLocal: with fail_mode local and one gateway, no phase admits more
// than one limit past what an exact limiter could, and no 1 s window
// holds more than two limits (the window Redis filled, and the local one
// starting empty). The slack is the decisions a few ms of client-side
// timestamp jitter can move across a window's edge.
func checkLocal(limit int, res *ChaosResult) []string {
	var fails []string
	slack := max(3, limit/10)
	for _, p := range res.Phases {
		if p.Limited.Over > limit {
			fails = append(fails, fmt.Sprintf("phase %s: limited tenant admitted %d, %d over the bound %d; want at most one limit (%d) over",
				p.Name, p.Limited.Admitted, p.Limited.Over, p.Limited.Bound, limit))
		}
	}
	if res.PeakLimited > 2*limit+slack {
		fails = append(fails, fmt.Sprintf("limited tenant: %d admitted within one window; want at most 2 × %d + %d", res.PeakLimited, limit, slack))
	}
	return fails
}

// checkFlood: while Redis was healthy, the flood made no decision
// degraded, neither its own nor the attack's; it got no 5xx but honest
// sheds, and an answer to every request.
func checkFlood(f *FloodResult) []string {
	var fails []string
	if f.DegradedHealthy > 0 {
		fails = append(fails, fmt.Sprintf("flood: %d of its decisions came back degraded while Redis was healthy; want 0%s", f.DegradedHealthy, f.redisNote()))
	}
	if f.AttackDegradedHealthy > 0 {
		fails = append(fails, fmt.Sprintf("overload: %d of the attack's decisions came back degraded while Redis was healthy; want 0%s", f.AttackDegradedHealthy, f.redisNote()))
	}
	if f.FiveXX > 0 || f.NoReply > 0 {
		fails = append(fails, fmt.Sprintf("flood: %d 5xx other than sheds and %d requests without a response; want none", f.FiveXX, f.NoReply))
	}
	return fails
}

func fmtMs(v *float64) string {
	if v == nil {
		return "never"
	}
	return fmt.Sprintf("%.0f", *v)
}
