package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
	"github.com/l1gw/l1gw/loadtest/internal/timeline"
)

// The targets, reported (never asserted: they are timings).
const (
	targetP99Ms      = 50.0
	targetRecoveryMs = 2000.0
)

// ChaosReport is one run of the chaos suite.
type ChaosReport struct {
	// Machine describes where the run happened.
	Machine harness.Machine `json:"machine"`
	// Command repeats the run.
	Command string `json:"command"`
	// Form is "full" or "short" (the form make test runs).
	Form string `json:"form"`
	// Rate is the attack's rate in requests per second.
	Rate int `json:"rate"`
	// Limit is the limited tenant's limit per 1 s window.
	Limit int `json:"limit"`
	// Results are the scenarios' measurements, in suite order.
	Results []ChaosResult `json:"results"`
}

// ChaosResult is one scenario's measurements.
type ChaosResult struct {
	// Scenario names the scenario; Setup says what ran.
	Scenario string `json:"scenario"`
	Setup    string `json:"setup"`
	// FailMode is the gateway's ratelimit.fail_mode.
	FailMode string `json:"fail_mode"`
	// Phases are in order; Total is the whole run, fault included.
	Phases []PhaseResult `json:"phases"`
	Total  PhaseResult   `json:"total"`
	// Recoveries time the return to ok after each heal.
	Recoveries []Recovery `json:"recoveries"`
	// PeakLimited is the most limited-tenant admissions in any 1 s.
	PeakLimited int `json:"peak_limited_per_window"`
	// PeakLimitedOK is the most limited-tenant admissions marked ok
	// certainly decided within one window (between the first's send and
	// the last's reply; see peakAdmittedOK): at most Limit, for an exact
	// limiter.
	PeakLimitedOK int `json:"peak_limited_ok_per_window"`
	// Limit is the limited tenant's limit per window.
	Limit int `json:"limit"`
	// ExactOK: the scenario requires PeakLimitedOK ≤ Limit.
	ExactOK bool `json:"exact_ok"`
	// BulkDegraded counts the bulk tenant's degraded responses; with
	// BulkOnHealthyShard (a Cluster fault on another shard) it must be 0.
	BulkDegraded       int  `json:"bulk_degraded"`
	BulkOnHealthyShard bool `json:"bulk_on_healthy_shard,omitempty"`
	// BulkDegradedByPhase splits BulkDegraded by the phase each was sent
	// in: one before the fault is no failover's doing.
	BulkDegradedByPhase []PhaseCount `json:"bulk_degraded_by_phase,omitempty"`
	// Degraded compares the degraded responses with the gateway's count.
	Degraded DegradedCheck `json:"degraded"`
	// Before and After sample the gateway at steady load before the
	// fault and after the recovery; nil where there is no before.
	Before *Resources `json:"before,omitempty"`
	After  *Resources `json:"after,omitempty"`
	// Outage is true when every Redis node went down: then the Redis
	// connections must not grow either.
	Outage bool `json:"outage"`
	// TransportErrors are requests with no response, by error.
	TransportErrors map[string]int `json:"transport_errors,omitempty"`
	// WarnMsgs counts the gateway's WARN and ERROR log lines by message.
	WarnMsgs map[string]int `json:"warn_msgs,omitempty"`
	// Flood is what the flood beside the attack saw, where one ran.
	Flood *FloodResult `json:"flood,omitempty"`
	// Notes are anomalies worth a look.
	Notes []string `json:"notes,omitempty"`
	// Failures are the checks the scenario failed (check), or why it did
	// not run to the end.
	Failures []string `json:"failures,omitempty"`
	// Timeline is the attack per second with the fault windows, plotted
	// in chaos.html; nil when the scenario stopped early.
	Timeline *timeline.Timeline `json:"timeline,omitempty"`
}

// DegradedCheck compares responses marked degraded with the gateway's
// l1gw_ratelimit_decisions_total{result="degraded"} over the attack.
type DegradedCheck struct {
	// Marked counts X-RateLimit-Status: degraded responses.
	Marked int `json:"marked"`
	// Counted is the counter's increase.
	Counted int `json:"counted"`
	// ByReason is l1gw_degraded_decisions_total's increase by reason.
	ByReason map[string]int `json:"by_reason,omitempty"`
}

// worstRecovery is the longest recovery in ms; -1 when one never settled,
// 0 without any.
func (r *ChaosResult) worstRecovery() float64 {
	worst := 0.0
	for _, rec := range r.Recoveries {
		if rec.Ms == nil {
			return -1
		}
		worst = max(worst, *rec.Ms)
	}
	return worst
}

// fiveXX counts responses with a 5xx status.
func fiveXX(codes map[string]int) int {
	n := 0
	for code, c := range codes {
		if strings.HasPrefix(code, "5") && len(code) == 3 {
			n += c
		}
	}
	return n
}

// misses lists the targets the scenario missed.
func (r *ChaosResult) misses() []string {
	var m []string
	if n := fiveXX(r.Total.StatusCodes); n > 0 {
		m = append(m, fmt.Sprintf("%d×5xx", n))
	}
	if r.Degraded.Marked != r.Degraded.Counted || r.Total.Unmarked > 0 {
		m = append(m, "degraded not all marked")
	}
	if p := r.Total.LatencyMs.P99; p >= targetP99Ms {
		m = append(m, fmt.Sprintf("P99 %.1f ms", p))
	}
	switch w := r.worstRecovery(); {
	case w < 0:
		m = append(m, "never back to ok")
	case w > targetRecoveryMs:
		m = append(m, fmt.Sprintf("recovery %.2f s", w/1000))
	}
	if g := r.growth(); g != "" {
		m = append(m, "growth: "+g)
	}
	if n := len(r.Failures); n > 0 {
		m = append(m, fmt.Sprintf("**%d checks failed**", n))
	}
	return m
}

// growth says what grew past its slack from before to after: goroutines,
// fds, and in an outage scenario Redis connections; "" when nothing did.
func (r *ChaosResult) growth() string {
	b, a := r.Before, r.After
	if b == nil || a == nil {
		return ""
	}
	var g []string
	// After a flood, or a spell of slow answers in which the load
	// generator opened more connections than it had (one per request
	// waiting), fasthttp keeps a worker goroutine for each connection it
	// served, idle, for 10 s (Server.MaxIdleWorkerDuration): goroutines say
	// nothing there; fds and connections still do.
	widened := a.ClientConns > b.ClientConns+fdSlack
	if r.Flood == nil && !widened && a.Goroutines > b.Goroutines+goroutineSlack {
		g = append(g, fmt.Sprintf("goroutines %d → %d", b.Goroutines, a.Goroutines))
	}
	if a.FDs > b.FDs+fdSlack {
		g = append(g, fmt.Sprintf("fds %d → %d", b.FDs, a.FDs))
	}
	if r.Outage && a.RedisConns > b.RedisConns+fdSlack {
		g = append(g, fmt.Sprintf("Redis connections %d → %d", b.RedisConns, a.RedisConns))
	}
	return strings.Join(g, ", ")
}

// Markdown is the report: the machine, a summary against the targets,
// then every phase.
func (r *ChaosReport) Markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# l1gw chaos suite (%s form)\n\n%s · nproc %d · %s · %s · %s · loadavg %s (at start)\n\n",
		r.Form, m.Date, m.NProc, m.CPU, m.Go, m.Gateway, m.LoadAvg)
	fmt.Fprintf(&b, "Reproduce: `%s`\n\n", r.Command)
	fmt.Fprintf(&b, "Load: %d req/s through every phase, 2/3 tenant `%s` (limit %d/s), 1/3 tenant `%s` (limit %d per 1 s). "+
		"Targets: no 5xx, every degraded decision marked, P99 < %.0f ms over the whole run, back to ok within %.0f s.\n\n",
		r.Rate, bulkTenant, bulkLimit, limitedTenant, r.Limit, targetP99Ms, targetRecoveryMs/1000)
	b.WriteString("| scenario | setup | fail mode | requests | 5xx | degraded marked / counted | P50 ms | P99 ms | max ms | recovery s | peak limited / 1 s | over the limit: marked, unmarked | goroutines, fds, Redis conns before → after | misses |\n")
	b.WriteString("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|\n")
	for i := range r.Results {
		b.WriteString(summaryRow(&r.Results[i]))
	}
	b.WriteString("\n| scenario | phase | s | requests | status codes | degraded | P50 ms | P99 ms | max ms | limited admitted / bound | over | Redis worst PING ms | Redis CPU worst stall ms |\n")
	b.WriteString("|---|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, res := range r.Results {
		for _, p := range res.Phases {
			l := p.LatencyMs
			ping, stall := "–", "–"
			if s := p.Redis; s != nil && s.Probed > 0 {
				ping, stall = fmt.Sprintf("%.2f", s.PingMaxMs), fmt.Sprintf("%.2f", s.CPUStallMs)
				if s.Error != "" {
					ping += " (a probe failed)"
				}
			} else if s != nil {
				ping = "probe failed"
			}
			fmt.Fprintf(&b, "| %s | %s | %.2f | %d | %s | %d | %.2f | %.2f | %.2f | %d / %d | %d | %s | %s |\n",
				res.Scenario, p.Name, p.Seconds, p.Requests, harness.FormatCodes(p.StatusCodes), p.Degraded,
				l.P50, l.P99, l.Max, p.Limited.Admitted, p.Limited.Bound, p.Limited.Over, ping, stall)
		}
	}
	b.WriteString("\n")
	for _, res := range r.Results {
		b.WriteString(resultNotes(&res))
	}
	return b.String()
}

func summaryRow(res *ChaosResult) string {
	rec := "–"
	if len(res.Recoveries) > 0 {
		if w := res.worstRecovery(); w < 0 {
			rec = "never"
		} else {
			rec = fmt.Sprintf("%.2f", w/1000)
		}
	}
	res2 := "–"
	if b, a := res.Before, res.After; b != nil && a != nil {
		res2 = fmt.Sprintf("%d, %d, %d → %d, %d, %d", b.Goroutines, b.FDs, b.RedisConns, a.Goroutines, a.FDs, a.RedisConns)
	}
	miss := strings.Join(res.misses(), "; ")
	if miss == "" {
		miss = "none"
	}
	t := res.Total
	marked, unmarked := res.over()
	return fmt.Sprintf("| %s | %s | %s | %d | %d | %d / %d | %.2f | %.2f | %.2f | %s | %d | %d, %d | %s | %s |\n",
		res.Scenario, res.Setup, res.FailMode, t.Requests, fiveXX(t.StatusCodes), res.Degraded.Marked, res.Degraded.Counted,
		t.LatencyMs.P50, t.LatencyMs.P99, t.LatencyMs.Max, rec, res.PeakLimited, marked, unmarked, res2, miss)
}

// over splits the limited tenant's admissions past its limit, in the
// worst window, into those marked degraded and those marked ok.
func (res *ChaosResult) over() (marked, unmarked int) {
	unmarked = max(0, res.PeakLimitedOK-res.Limit)
	return max(0, res.PeakLimited-res.Limit-unmarked), unmarked
}

// resultNotes are a scenario's lines under the tables: degraded reasons,
// Redis connections, transport errors, warnings and notes.
func resultNotes(res *ChaosResult) string {
	var b strings.Builder
	if len(res.Degraded.ByReason) > 0 {
		fmt.Fprintf(&b, "- %s: degraded by reason %s\n", res.Scenario, formatCounts(res.Degraded.ByReason))
	}
	if bf, af := res.Before, res.After; bf != nil && af != nil {
		fmt.Fprintf(&b, "- %s: client connections %d → %d, upstream connections %d → %d, RSS %.1f → %.1f MB\n", res.Scenario,
			bf.ClientConns, af.ClientConns, bf.UpstreamConns, af.UpstreamConns, float64(bf.RSSKB)/1024, float64(af.RSSKB)/1024)
	}
	for _, rec := range res.Recoveries {
		if rec.Ms != nil {
			note := ""
			if *rec.Ms > targetRecoveryMs {
				note = res.redisNote(rec.After) // was it Redis, or the machine?
			}
			fmt.Fprintf(&b, "- %s: back to ok %.0f ms after the heal that started %q%s\n", res.Scenario, *rec.Ms, rec.After, note)
		}
	}
	if f := res.Flood; f != nil {
		fmt.Fprintf(&b, "- %s: flood of %d connections beside the attack: %d requests, %d degraded (%d back while Redis was healthy; the attack's: %d), %d shed (503), %d other 5xx, %d without a response%s\n",
			res.Scenario, f.Conns, f.Requests, f.Degraded, f.DegradedHealthy, f.AttackDegradedHealthy, f.Shed, f.FiveXX, f.NoReply, f.redisNote())
	}
	for _, p := range res.Phases {
		if p.Redis != nil && p.Redis.Error != "" {
			fmt.Fprintf(&b, "- %s: phase %s: Redis' probe: %s\n", res.Scenario, p.Name, p.Redis.Error)
		}
	}
	if len(res.TransportErrors) > 0 {
		fmt.Fprintf(&b, "- %s: transport errors %s\n", res.Scenario, formatCounts(res.TransportErrors))
	}
	if len(res.WarnMsgs) > 0 {
		fmt.Fprintf(&b, "- %s: gateway warnings %s\n", res.Scenario, formatCounts(res.WarnMsgs))
	}
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "- %s: %s\n", res.Scenario, n)
	}
	for _, f := range res.Failures {
		fmt.Fprintf(&b, "- %s: **FAIL** %s\n", res.Scenario, f)
	}
	return b.String()
}

// formatCounts is "a:1 b:2", by key.
func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%q:%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// Err names the scenarios that failed a check; nil when none did.
func (r *ChaosReport) Err() error {
	var failed []string
	for _, res := range r.Results {
		if len(res.Failures) > 0 {
			failed = append(failed, res.Scenario)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d scenarios failed: %s", len(failed), len(r.Results), strings.Join(failed, ", "))
}
