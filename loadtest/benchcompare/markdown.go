package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// tableHeader is the Markdown table's header and alignment rows.
const tableHeader = "| system | load | req/s | gw CPU µs/req | Redis CPU µs/req | P50 ms | P99 ms | decision P50 ms | decision P99 ms | Redis call P99 ms " +
	"| degraded | Redis worst PING ms | Redis CPU worst stall ms | limited admitted/limit " +
	"| req/s vs naive | gw CPU/req vs naive | Redis CPU/req vs naive | status codes (all runs) |\n" +
	"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n"

// Markdown renders the report: header, table, added latency and notes.
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString("# l1gw bench-compare\n\n")
	m := r.Machine
	fmt.Fprintf(&b, "- machine: nproc %d, %s, GOMAXPROCS %d (runner), %s, kernel %s\n", m.NumCPU, m.CPUModel, m.GOMAXPROCS, m.GoVersion, m.Kernel)
	fmt.Fprintf(&b, "- load average (1 5 15 min): %s at start, %s at end; anything else running on the machine skews the numbers\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(&b, "- gateway: %s\n", m.Gateway)
	fmt.Fprintf(&b, "- pinning: %s\n", r.Pinning)
	fmt.Fprintf(&b, "- date: %s\n", r.Date)
	fmt.Fprintf(&b, "- %d run(s), %s per measurement, each system restarted (and Redis fresh) for each; "+
		"a number is the median over the runs, (min–max) when they differ\n", r.Runs, r.Duration)
	fmt.Fprintf(&b, "- reproduce: `%s`\n\n", r.Command)
	b.WriteString(tableHeader)
	for i := range r.Rows {
		b.WriteString(r.Rows[i].markdown())
	}
	if r.OpenRate > 0 {
		fmt.Fprintf(&b, "\nAdded P99 over bare at %d req/s (every system at that rate, same run):\n\n", r.OpenRate)
	} else {
		b.WriteString("\nAdded P99 over bare at half load (each system at half its own closed-loop rate, same run):\n\n")
	}
	if len(r.AddedP99) == 0 {
		b.WriteString("- – (needs bare and l1gw-memory or l1gw-exact)\n")
	}
	for _, a := range r.AddedP99 {
		fmt.Fprintf(&b, "- %s: %s ms\n", a.System, signed(a.Ms))
	}
	b.WriteString(r.batchesMarkdown())
	notes := r.notes()
	if len(notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// batchesMarkdown is the table of the gateways' decision batches (from
// their /metrics), or nothing when no row has them.
func (r *Report) batchesMarkdown() string {
	var b strings.Builder
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.BatchSize == nil {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\nDecision batches (the gateway's `l1gw_decision_batch_size` and `l1gw_decisions_shared_total` over the load):\n\n" +
				"| system | load | decisions per call | shared a script call, % |\n|---|---|--:|--:|\n")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.System, row.Load, row.BatchSize.format(1), row.SharedPct.format(0))
	}
	return b.String()
}

// markdown is the row's table line.
func (row *Row) markdown() string {
	limited := "–"
	if row.Enforced {
		// The admissions marked ok, which the limit bounds; those marked
		// degraded (fail open) beside them.
		limited = fmt.Sprintf("%s/%d", row.LimitedOK.format(0), row.LimitedLimit)
		if row.LimitedDegraded.Max > 0 {
			limited += fmt.Sprintf(" + %s degraded", row.LimitedDegraded.format(0))
		}
	}
	cells := []string{
		row.System, row.Load, row.RPS.format(0), row.GwCPU.format(1), row.RedisCPU.format(1),
		row.P50.format(2), row.P99.format(2), row.DecisionP50.format(2), row.DecisionP99.format(2), row.RedisCallP99.format(2),
		row.Degraded.format(0), row.RedisPingMax.format(1), row.RedisCPUStall.format(1), limited,
		formatRatio(row.RPSVsNaive), formatRatio(row.GwCPUVsNaive), formatRatio(row.RedisCPUVsNaive),
		formatCodes(row.Codes, row.TransportErrors),
	}
	return "| " + strings.Join(cells, " | ") + " |\n"
}

// signed renders a Stat with an explicit sign, two decimals.
func signed(s Stat) string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	plus := func(v float64) string {
		if v >= 0 {
			return "+" + f(v)
		}
		return f(v)
	}
	out := plus(s.Median)
	if s.N > 1 && f(s.Min) != f(s.Max) {
		out += " (" + plus(s.Min) + " to " + plus(s.Max) + ")"
	}
	return out
}

// slowPingMs is the PING round trip past which a note says when it was:
// ten default budgets.
const slowPingMs = 100

// notes are the things a reader must not miss: over-admission, degraded
// responses, a Redis slow to answer its probe, transport errors.
func (r *Report) notes() []string {
	var out []string
	if !r.Pinned {
		out = append(out, "no CPU pinning: the load generator, the upstream, Redis and the system under test share the CPUs")
	}
	for _, m := range r.Measurements {
		where := fmt.Sprintf("run %d, %s, %s", m.Run, m.System, m.Load)
		if m.OverAdmitted > 0 {
			out = append(out, fmt.Sprintf("%s: OVER-ADMISSION: the limited tenant got %d admitted marked ok of %d sent; its limit is %d",
				where, m.LimitedOK(), m.LimitedSent, m.LimitedLimit))
		}
		if m.LimitedDegraded > 0 {
			out = append(out, fmt.Sprintf("%s: the limited tenant got %d more admitted marked degraded (fail open: not bounded by the limit), beside %d marked ok; its limit is %d",
				where, m.LimitedDegraded, m.LimitedOK(), m.LimitedLimit))
		}
		if m.Degraded > 0 || len(m.DegradedByReason) > 0 {
			ping := ""
			if m.RedisPingMax != nil {
				every := float64(harness.ProbeEvery) / float64(time.Millisecond)
				var late float64
				if m.RedisCPUStallMax != nil {
					late = *m.RedisCPUStallMax
				}
				fits := harness.SilenceFitsMs(*m.RedisPingMax, late)
				ping = fmt.Sprintf("; Redis' worst PING round trip meanwhile: %.1f ms (one PING every %.0f ms: a silence of up to %.1f ms fits it)",
					*m.RedisPingMax, every, fits)
			}
			if m.RedisCPUStallMax != nil {
				ping += fmt.Sprintf("; its CPU's worst stall: %.1f ms", *m.RedisCPUStallMax)
			}
			ping += tcpNote(m.TCP)
			out = append(out, fmt.Sprintf("%s: %d of %d responses were X-RateLimit-Status: degraded; gateway's degraded decisions by reason: %s%s",
				where, m.Degraded, m.Responses, formatCounts(m.DegradedByReason), ping))
		}
		if p := m.Probe; p != nil && p.WorstMs >= slowPingMs {
			how := "answered"
			if p.WorstCut {
				how = "not answered when the probe was stopped"
			}
			own := fmt.Sprintf("none of its events took %d ms", latencyThresholdMs)
			if len(m.RedisLatency) > 0 {
				own = "worst ms by event " + formatCounts(m.RedisLatency)
			}
			if m.StealRunnerMs != nil {
				own += fmt.Sprintf("; the host took %.0f ms of its CPU over the load (steal)", *m.StealRunnerMs)
			}
			if p.WorstRetrans > 0 {
				own += fmt.Sprintf("; the probe's socket sent %d segments again during that PING (its RTO %.0f ms)", p.WorstRetrans, p.WorstRtoMs)
			}
			own += tcpNote(m.TCP)
			out = append(out, fmt.Sprintf("%s: Redis' slowest PING took %.1f ms, sent %.2f s into the probe's %.2f s, %s; its CPU's worst stall: %.1f ms; Redis' own latency monitor: %s",
				where, p.WorstMs, p.WorstAtMs/1000, p.SpanMs/1000, how, p.WorstLateMs, own))
		} else if len(m.RedisLatency) > 0 {
			out = append(out, fmt.Sprintf("%s: Redis' own latency monitor, worst ms by event: %s", where, formatCounts(m.RedisLatency)))
		}
		if p := m.Probe; p != nil && p.WorstLateMs >= slowPingMs {
			steal := ""
			if m.StealRunnerMs != nil {
				steal = fmt.Sprintf(", of which the host counted %.0f ms as steal over the whole load", *m.StealRunnerMs)
			}
			out = append(out, fmt.Sprintf("%s: the runner's CPU (Redis') ran nothing for %.1f ms: the probe, at real-time priority, woke that late from a sleep%s%s",
				where, p.WorstLateMs, steal, tcpNote(m.TCP)))
		}
		if m.RedisPingMax != nil && !m.ProbeRealtime {
			out = append(out, fmt.Sprintf("%s: the Redis probe could not run at real-time priority (needs root): its worst PING includes its own waits for the CPU", where))
		}
		for _, w := range sortedKeys(m.Warnings) {
			out = append(out, fmt.Sprintf("%s: gateway log: %d × %s", where, m.Warnings[w], w))
		}
		if m.TransportErrors > 0 {
			out = append(out, fmt.Sprintf("%s: %d requests got no response: %s", where, m.TransportErrors, strings.Join(m.Errors, "; ")))
		}
	}
	return out
}

// sortedKeys is m's keys in ascending order.
func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// formatCounts renders counts as "a=1, b=2" in key order; "none" when empty.
func formatCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// tcpNote is "; the host's TCP over the load: …" with the counters that
// grew, or that none did.
func tcpNote(grew map[string]int64) string {
	if len(grew) == 0 {
		return "; the host's TCP sent nothing again over the load"
	}
	return "; the host's TCP over the load: " + formatCounts(grew)
}
