package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Report is one benchcompare run: where it ran, every measurement and their
// summary over the runs.
type Report struct {
	Machine  Machine `json:"machine"`
	Pinning  string  `json:"pinning"`
	Pinned   bool    `json:"pinned"`
	Date     string  `json:"date"`
	Command  string  `json:"command"`
	Duration string  `json:"duration"`
	// OpenRate is every system's open-loop rate; 0: half its own maximum.
	OpenRate     int           `json:"open_rate,omitempty"`
	Runs         int           `json:"runs"`
	Measurements []Measurement `json:"measurements"`
	Rows         []Row         `json:"rows"`
	AddedP99     []AddedP99    `json:"added_p99_over_bare"`
}

// Row is one system under one load, summarized over the runs.
type Row struct {
	System string `json:"system"`
	// Kind is the Measurement's Load ("closed 64", "open"); Load the label.
	Kind            string `json:"kind"`
	Load            string `json:"load"`
	RPS             Stat   `json:"rps"`
	GwCPU           *Stat  `json:"gw_cpu_us_per_req"`
	RedisCPU        *Stat  `json:"redis_cpu_us_per_req"`
	DecisionP50     *Stat  `json:"decision_p50_ms,omitempty"`
	DecisionP99     *Stat  `json:"decision_p99_ms,omitempty"`
	RedisCallP99    *Stat  `json:"redis_call_p99_ms,omitempty"`
	BatchSize       *Stat  `json:"batch_size,omitempty"`
	SharedPct       *Stat  `json:"shared_pct,omitempty"`
	P50             *Stat  `json:"p50_ms,omitempty"`
	P99             *Stat  `json:"p99_ms,omitempty"`
	Max             *Stat  `json:"max_ms,omitempty"`
	Degraded        Stat   `json:"degraded"`
	RedisPingMax    *Stat  `json:"redis_ping_max_ms,omitempty"`
	RedisCPUStall   *Stat  `json:"redis_cpu_stall_max_ms,omitempty"`
	Enforced        bool   `json:"enforced"`
	LimitedLimit    int64  `json:"limited_limit"`
	LimitedAdmitted Stat   `json:"limited_admitted"`
	LimitedOK       Stat   `json:"limited_admitted_ok"`
	LimitedDegraded Stat   `json:"limited_admitted_degraded"`
	OverAdmitted    Stat   `json:"over_admitted"`
	// Summed over the runs.
	Codes           map[int]int64 `json:"status_codes"`
	TransportErrors int64         `json:"transport_errors"`
	Errors          []string      `json:"errors,omitempty"`
	// This row's medians over naive's for the same load; nil without naive.
	RPSVsNaive      *float64 `json:"rps_vs_naive"`
	GwCPUVsNaive    *float64 `json:"gw_cpu_vs_naive"`
	RedisCPUVsNaive *float64 `json:"redis_cpu_vs_naive"`
}

// AddedP99 is a gateway's open-loop P99 minus bare's in the same run, each
// at half its own closed-loop rate.
type AddedP99 struct {
	System string `json:"system"`
	Ms     Stat   `json:"ms"`
}

// newReport is a report with the run's description and no measurements.
func newReport(ctx context.Context, o options, pin pinning) *Report {
	return &Report{
		Machine:  describeMachine(ctx, o.bin),
		Pinning:  pin.desc,
		Pinned:   pin.on(),
		Date:     time.Now().UTC().Format(time.RFC3339),
		Command:  reproduce(o),
		Duration: o.duration.String(),
		Runs:     o.runs,
		OpenRate: o.openRate,
	}
}

// summarize fills Rows and AddedP99 from Measurements.
func (r *Report) summarize() {
	type key struct{ system, load string }
	var order []key
	groups := map[key][]Measurement{}
	for _, m := range r.Measurements {
		k := key{m.System, m.Load}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], m)
	}
	r.Rows = make([]Row, 0, len(order))
	for _, k := range order {
		r.Rows = append(r.Rows, summarizeRow(groups[k]))
	}
	naive := map[string]*Row{}
	for i := range r.Rows {
		if r.Rows[i].System == "naive" {
			naive[r.Rows[i].Kind] = &r.Rows[i]
		}
	}
	for i := range r.Rows {
		row := &r.Rows[i]
		if n := naive[row.Kind]; n != nil {
			row.RPSVsNaive = ratio(&row.RPS, &n.RPS)
			row.GwCPUVsNaive = ratio(row.GwCPU, n.GwCPU)
			row.RedisCPUVsNaive = ratio(row.RedisCPU, n.RedisCPU)
		}
	}
	r.AddedP99 = addedP99(r.Measurements, "l1gw-memory", "l1gw-exact")
}

// summarizeRow is the Row of one system's measurements under one load.
func summarizeRow(ms []Measurement) Row {
	first := ms[0]
	row := Row{
		System: first.System, Kind: first.Load, Load: first.Load,
		RPS:             statOf(ms, func(m Measurement) float64 { return m.RPS }),
		GwCPU:           optStatOf(ms, func(m Measurement) *float64 { return m.GwCPU }),
		RedisCPU:        optStatOf(ms, func(m Measurement) *float64 { return m.RedisCPU }),
		DecisionP50:     optStatOf(ms, func(m Measurement) *float64 { return m.DecisionP50 }),
		DecisionP99:     optStatOf(ms, func(m Measurement) *float64 { return m.DecisionP99 }),
		RedisCallP99:    optStatOf(ms, func(m Measurement) *float64 { return m.RedisCallP99 }),
		BatchSize:       optStatOf(ms, func(m Measurement) *float64 { return m.BatchSize }),
		SharedPct:       optStatOf(ms, func(m Measurement) *float64 { return m.SharedPct }),
		P50:             optStatOf(ms, func(m Measurement) *float64 { return m.P50 }),
		P99:             optStatOf(ms, func(m Measurement) *float64 { return m.P99 }),
		Max:             optStatOf(ms, func(m Measurement) *float64 { return m.Max }),
		Degraded:        statOf(ms, func(m Measurement) float64 { return float64(m.Degraded) }),
		RedisPingMax:    optStatOf(ms, func(m Measurement) *float64 { return m.RedisPingMax }),
		RedisCPUStall:   optStatOf(ms, func(m Measurement) *float64 { return m.RedisCPUStallMax }),
		Enforced:        first.Enforced,
		LimitedLimit:    first.LimitedLimit,
		LimitedAdmitted: statOf(ms, func(m Measurement) float64 { return float64(m.LimitedAdmitted) }),
		LimitedOK:       statOf(ms, func(m Measurement) float64 { return float64(m.LimitedOK()) }),
		LimitedDegraded: statOf(ms, func(m Measurement) float64 { return float64(m.LimitedDegraded) }),
		OverAdmitted:    statOf(ms, func(m Measurement) float64 { return float64(m.OverAdmitted) }),
		Codes:           map[int]int64{},
	}
	if first.Load == "open" {
		rate := statOf(ms, func(m Measurement) float64 { return float64(m.Rate) })
		row.Load = fmt.Sprintf("open @ %.0f req/s", rate.Median)
	}
	for _, m := range ms {
		for c, n := range m.Codes {
			row.Codes[c] += n
		}
		row.TransportErrors += m.TransportErrors
		for _, e := range m.Errors {
			if len(row.Errors) < maxErrors && !contains(row.Errors, e) {
				row.Errors = append(row.Errors, e)
			}
		}
	}
	return row
}

// addedP99 is, for each of the systems, its open-loop P99 minus bare's in
// the same run, over the runs that have both.
func addedP99(ms []Measurement, systems ...string) []AddedP99 {
	bare := map[int]float64{}
	for _, m := range ms {
		if m.System == "bare" && m.P99 != nil {
			bare[m.Run] = *m.P99
		}
	}
	var out []AddedP99
	for _, sys := range systems {
		var xs []float64
		for _, m := range ms {
			if b, ok := bare[m.Run]; ok && m.System == sys && m.P99 != nil {
				xs = append(xs, *m.P99-b)
			}
		}
		if s, ok := newStat(xs); ok {
			out = append(out, AddedP99{System: sys, Ms: s})
		}
	}
	return out
}

// Write writes md as bench-compare.md and the report as bench-compare.json
// into dir, creating it if need be.
func (r *Report) Write(dir, md string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-compare.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the JSON report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-compare.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write the Markdown report: %w", err)
	}
	return nil
}
