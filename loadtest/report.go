package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
	"github.com/l1gw/l1gw/loadtest/internal/timeline"
)

// Report is one run: where it ran, how to repeat it, and its results.
type Report struct {
	// Machine describes where the run happened.
	Machine harness.Machine `json:"machine"`
	// Command repeats the run.
	Command string `json:"command"`
	// Results are the scenarios' measurements, in run order.
	Results []Result `json:"results"`
}

// Markdown is the report as a header and a table, then the limit checks
// and notes.
func (r *Report) Markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# l1gw load test\n\n%s · nproc %d · %s · %s · %s · loadavg %s (at start)\n\n",
		m.Date, m.NProc, m.CPU, m.Go, m.Gateway, m.LoadAvg)
	fmt.Fprintf(&b, "Reproduce: `%s`\n\n", r.Command)
	b.WriteString("| scenario | via | requests | rate/s | status codes | P50 ms | P90 ms | P99 ms | max ms | P50 × base | P99 × base | gw CPU-ms / 1k req | gw RSS MB before → after |\n")
	b.WriteString("|---|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, res := range r.Results {
		if res.Upload == nil {
			b.WriteString(tableRow(res))
		}
	}
	b.WriteString("\n")
	for _, res := range r.Results {
		if c := res.Limit; c != nil {
			fmt.Fprintf(&b, "- %s: limit %d/s over %s → expected %d admitted; measured %d (%+.1f%%), denied %d.\n",
				res.Scenario, c.PerSecond, res.Duration, c.Expected, c.Admitted, 100*c.RelErr, c.Denied)
		}
		for _, e := range res.Errors {
			fmt.Fprintf(&b, "- %s: transport error: %s\n", res.Scenario, e)
		}
		for _, n := range res.Notes {
			fmt.Fprintf(&b, "- %s: %s\n", res.Scenario, n)
		}
		if h := res.Gateway.held(); h != nil {
			fmt.Fprintf(&b, "- %s: %d connections without a key, each declaring a 10 MiB body and sending none: gateway RSS %+.1f MB 1 s after they opened (%d of them open then); the attack ran beside them\n",
				res.Scenario, h.Conns, float64(h.RSSGrowthKB)/1024, h.Open)
		}
		if u := res.Upload; u != nil {
			fmt.Fprintf(&b, "- %s: %d MiB through the gateway in %.1f s (%.0f MB/s), answered %d (%s); gateway RSS at most %+.1f MB over it\n",
				res.Scenario, u.Bytes>>20, u.Seconds, u.MBps, u.Status, u.Received, float64(u.PeakRSSGrowthKB)/1024)
		}
		if g := res.Gateway; g != nil && g.Pressure != nil {
			b.WriteString(pressureLines(res.Scenario, res.LatencyMs, res.Gateway))
		}
		if rl := res.Reloads; rl != nil {
			fmt.Fprintf(&b, "- %s: %d config reloads (POST /v1/reload) spread over the attack, each adding a tenant and changing the limit, number %d a file that does not load: answered %s\n",
				res.Scenario, rl.Done, reloadInvalid, harness.FormatCodes(rl.Codes))
		}
		if g := res.Gateway; g != nil && g.WarnLines > 0 {
			fmt.Fprintf(&b, "- %s: gateway logged %d warnings/errors: %v\n", res.Scenario, g.WarnLines, g.WarnMsgs)
		}
	}
	return b.String()
}

func tableRow(res Result) string {
	na := "–"
	p50r, p99r, cpu, rss := na, na, na, na
	if res.Ratio != nil {
		p50r = fmt.Sprintf("%.2f", res.Ratio.P50)
		p99r = fmt.Sprintf("%.2f", res.Ratio.P99)
	}
	if g := res.Gateway; g != nil {
		cpu = fmt.Sprintf("%.0f", g.CPUMsPer1k)
		rss = fmt.Sprintf("%.1f → %.1f", float64(g.RSSBeforeKB)/1024, float64(g.RSSAfterKB)/1024)
	}
	l := res.LatencyMs
	return fmt.Sprintf("| %s | %s | %d | %.1f | %s | %.3f | %.3f | %.3f | %.3f | %s | %s | %s | %s |\n",
		res.Scenario, res.Via, res.Requests, res.RateAchieved, harness.FormatCodes(res.StatusCodes),
		l.P50, l.P90, l.P99, l.Max, p50r, p99r, cpu, rss)
}

// Write saves results.json, results.md (the Markdown md) and
// results.html (the plots) in dir.
func (r *Report) Write(dir, md string) error {
	if err := harness.WriteReport(dir, "results", r, md); err != nil {
		return err
	}
	return r.page().WriteFile(filepath.Join(dir, "results.html"))
}

// page is the report's HTML page: a timeline per scenario that had an
// attack of its own.
func (r *Report) page() timeline.Page {
	m := r.Machine
	p := timeline.Page{Title: "l1gw load test", Lines: []string{
		fmt.Sprintf("%s · nproc %d · %s · %s · %s · loadavg %s (at start)", m.Date, m.NProc, m.CPU, m.Go, m.Gateway, m.LoadAvg),
		"Reproduce: " + r.Command,
		"Per second of send time; results.md has the totals, the gateway's CPU and memory, and the checks.",
	}}
	for _, res := range r.Results {
		if res.Timeline != nil {
			p.Timelines = append(p.Timelines, *res.Timeline)
		}
	}
	return p
}

// pressureLines reports idle-slowloris's rounds: the row above is the
// attacks beside the held connections; these compare them with the attacks
// alone, together and round by round.
func pressureLines(name string, pressed harness.Latency, g *Usage) string {
	pr := g.Pressure
	var b strings.Builder
	fmt.Fprintf(&b, "- %s: %d rounds on one gateway, each an attack alone, then the same beside %d idle and %d slowloris connections held through it: P50 %.3f → %.3f ms, P99 %.3f → %.3f ms (×%.2f), gateway CPU-ms / 1k req %.0f → %.0f\n",
		name, len(pr.Rounds), pr.Idle, pr.Slowloris, pr.Alone.P50, pressed.P50, pr.Alone.P99, pressed.P99, ratio(pressed.P99, pr.Alone.P99), pr.AloneCPUMsPer1k, g.CPUMsPer1k)
	for i, r := range pr.Rounds {
		fmt.Fprintf(&b, "  - round %d: P50 %.3f → %.3f ms, P99 %.3f → %.3f ms (×%.2f)\n",
			i+1, r.Alone.P50, r.Pressed.P50, r.Alone.P99, r.Pressed.P99, ratio(r.Pressed.P99, r.Alone.P99))
	}
	fmt.Fprintf(&b, "- %s: held connections: at least %d open as each attack started, %d as it ended, %d ended by the gateway (and opened again), %d dials failed and tried again; gateway RSS at most %+.1f MB with them open\n",
		name, pr.OpenAtStart, pr.OpenAtEnd, pr.Ended, pr.DialFailures, float64(pr.RSSGrowthKB)/1024)
	return b.String()
}

// ratio is a / b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
