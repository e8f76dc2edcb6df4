package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Report is one run: where it ran, how to repeat it, and its results.
type Report struct {
	// Machine describes where the run happened.
	Machine Machine `json:"machine"`
	// Command repeats the run.
	Command string `json:"command"`
	// Results are the scenarios' measurements, in run order.
	Results []Result `json:"results"`
}

// Machine is what the numbers depend on.
type Machine struct {
	// NProc is the CPUs the runner may use (nproc).
	NProc int `json:"nproc"`
	// CPU is the first "model name" of /proc/cpuinfo.
	CPU string `json:"cpu"`
	// LoadAvg is /proc/loadavg's 1, 5 and 15 minute loads at the start.
	LoadAvg string `json:"loadavg"`
	// Go is the runner's Go version.
	Go string `json:"go"`
	// Gateway is what `l1gw version` printed.
	Gateway string `json:"gateway"`
	// Date is the start of the run, UTC.
	Date string `json:"date"`
}

// describeMachine reads the CPU model and load from /proc and asks the
// gateway binary for its version.
func describeMachine(ctx context.Context, bin string) Machine {
	m := Machine{
		NProc: runtime.NumCPU(), CPU: "unknown", LoadAvg: "unknown", Gateway: "unknown",
		Go: runtime.Version(), Date: time.Now().UTC().Format(time.RFC3339),
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if b, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		m.Gateway = strings.TrimSpace(string(b))
	}
	return m
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
		b.WriteString(tableRow(res))
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
		res.Scenario, res.Via, res.Requests, res.RateAchieved, formatCodes(res.StatusCodes),
		l.P50, l.P90, l.P99, l.Max, p50r, p99r, cpu, rss)
}

// formatCodes is "200:4000 429:1000", by status.
func formatCodes(codes map[string]int) string {
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ":" + strconv.Itoa(codes[k])
	}
	return strings.Join(parts, " ")
}

// Write saves results.json and results.md (the Markdown md) in dir.
func (r *Report) Write(dir, md string) error { return writeReport(dir, "results", r, md) }

// writeReport writes v as <name>.json and md as <name>.md into dir: the
// load runner's report and the chaos suite's.
func writeReport(dir, name string, v any, md string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s.json: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write %s.md: %w", name, err)
	}
	return nil
}
