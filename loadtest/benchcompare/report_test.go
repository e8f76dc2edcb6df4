package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

func TestNewStat(t *testing.T) {
	for _, tc := range []struct {
		xs               []float64
		median, min, max float64
	}{
		{[]float64{5}, 5, 5, 5},
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{10, 10, 1000}, 10, 10, 1000},
	} {
		in := append([]float64(nil), tc.xs...)
		s, ok := newStat(tc.xs)
		if !ok || s.Median != tc.median || s.Min != tc.min || s.Max != tc.max || s.N != len(tc.xs) {
			t.Errorf("newStat(%v) = %+v, %v", tc.xs, s, ok)
		}
		for i := range in {
			if in[i] != tc.xs[i] {
				t.Fatalf("newStat reordered its input: %v", tc.xs)
			}
		}
	}
	if _, ok := newStat(nil); ok {
		t.Error("ok for no values")
	}
}

func TestStatFormat(t *testing.T) {
	var none *Stat
	for _, tc := range []struct {
		s    *Stat
		prec int
		want string
	}{
		{none, 1, "–"},
		{&Stat{Median: 12.345, Min: 12.345, Max: 12.345, N: 1}, 1, "12.3"},
		{&Stat{Median: 2, Min: 1, Max: 3, N: 3}, 0, "2 (1–3)"},
		{&Stat{Median: 2, Min: 2.01, Max: 2.04, N: 3}, 1, "2.0"}, // no spread at this precision
	} {
		if got := tc.s.format(tc.prec); got != tc.want {
			t.Errorf("format(%+v, %d) = %q; want %q", tc.s, tc.prec, got, tc.want)
		}
	}
	if got := signed(Stat{Median: -0.5, Min: -1, Max: 0.25, N: 3}); got != "-0.50 (-1.00 to +0.25)" {
		t.Errorf("signed: %q", got)
	}
}

func TestRatioAndCodes(t *testing.T) {
	if r := ratio(&Stat{Median: 3}, &Stat{Median: 2}); r == nil || *r != 1.5 {
		t.Errorf("ratio 3/2 = %v", r)
	}
	if ratio(&Stat{Median: 3}, &Stat{Median: 0}) != nil || ratio(nil, &Stat{Median: 1}) != nil {
		t.Error("ratio with a zero or missing side is not nil")
	}
	if got := formatRatio(nil); got != "–" {
		t.Errorf("formatRatio(nil) = %q", got)
	}
	if got := formatCodes(map[int]int64{429: 3, 200: 10}, 2); got != "200:10 429:3 err:2" {
		t.Errorf("formatCodes = %q", got)
	}
	if got := formatCodes(nil, 0); got != "–" {
		t.Errorf("formatCodes(none) = %q", got)
	}
}

// sampleMeasurements is two runs of bare, naive and l1gw-exact under
// closed 64 and the open loop.
func sampleMeasurements() []Measurement {
	f := func(v float64) *float64 { return &v }
	var ms []Measurement
	spikes := []map[string]int64{{"command": 120, "expire-cycle": 55}, {}}
	tcp := []map[string]int64{nil, {"TCPLossProbes": 1}}
	for run := 1; run <= 2; run++ {
		k := float64(run)
		ms = append(ms,
			Measurement{Run: run, System: "bare", Load: "closed 64", RPS: 20000 * k, GwCPU: f(40), Codes: map[int]int64{200: 100}},
			Measurement{Run: run, System: "bare", Load: "open", Rate: 10000, RPS: 10000, GwCPU: f(50), P50: f(0.2), P99: f(1), Codes: map[int]int64{200: 50}},
			Measurement{Run: run, System: "naive", Load: "closed 64", RPS: 10000, GwCPU: f(80), RedisCPU: f(40), Enforced: true,
				LimitedLimit: 100, LimitedAdmitted: 100, Codes: map[int]int64{200: 90, 429: 10}},
			Measurement{Run: run, System: "naive", Load: "open", Rate: 5000, RPS: 5000, GwCPU: f(90), RedisCPU: f(45), P50: f(0.4), P99: f(2),
				DecisionP50: f(0.25), DecisionP99: f(1.5), Enforced: true, LimitedLimit: 100, LimitedAdmitted: 60, Codes: map[int]int64{200: 40}, RedisPingMax: f(3), ProbeRealtime: true,
				RedisCPUStallMax: f(0.5), Probe: &harness.ProbeResult{WorstMs: 3 + 994*(k-1), WorstAtMs: 4120, SpanMs: 5030, WorstLateMs: 0.5 + 962.5*(2-k), WorstCut: run == 1},
				RedisLatency: map[string]int64{}, StealRunnerMs: f(10 * (k - 1)), TCP: tcp[run-1]},
			Measurement{Run: run, System: "l1gw-exact", Load: "closed 64", RPS: 15000, GwCPU: f(60), RedisCPU: f(10 * k), Enforced: true,
				LimitedLimit: 100, LimitedAdmitted: 100 + int64(run) + 3*int64(run-1), LimitedDegraded: 3 * int64(run-1), OverAdmitted: int64(run), Degraded: 7, Codes: map[int]int64{200: 99},
				RedisPingMax: f(20 * k), ProbeRealtime: run == 1, RedisCallP99: f(1.2), RedisCPUStallMax: f(11 * k),
				BatchSize: f(3 * k), SharedPct: f(70 + 10*k), RedisLatency: spikes[run-1]},
			Measurement{Run: run, System: "l1gw-exact", Load: "open", Rate: 7000 + 1000*run, RPS: 7000, GwCPU: f(70), RedisCPU: f(12), P50: f(0.3),
				P99: f(1 + k), Enforced: true, LimitedLimit: 100, LimitedAdmitted: 80, Codes: map[int]int64{200: 30}},
		)
	}
	return ms
}

func TestSummarize(t *testing.T) {
	r := &Report{Measurements: sampleMeasurements()}
	r.summarize()
	if len(r.Rows) != 6 {
		t.Fatalf("%d rows; want 6", len(r.Rows))
	}
	bare := r.Rows[0]
	if bare.System != "bare" || bare.Load != "closed 64" || bare.RPS.Median != 30000 || bare.RPS.Min != 20000 || bare.RPS.Max != 40000 {
		t.Errorf("bare closed row: %+v", bare)
	}
	if bare.RPSVsNaive == nil || *bare.RPSVsNaive != 3 || bare.RedisCPUVsNaive != nil || bare.Codes[200] != 200 {
		t.Errorf("bare vs naive: rps %v, redis %v, codes %v", bare.RPSVsNaive, bare.RedisCPUVsNaive, bare.Codes)
	}
	exactOpen := r.Rows[5]
	if exactOpen.Load != "open @ 8500 req/s" || exactOpen.P99.Median != 2.5 {
		t.Errorf("exact open row: load %q, P99 %+v", exactOpen.Load, exactOpen.P99)
	}
	if len(r.AddedP99) != 1 || r.AddedP99[0].System != "l1gw-exact" || r.AddedP99[0].Ms.Median != 1.5 ||
		r.AddedP99[0].Ms.Min != 1 || r.AddedP99[0].Ms.Max != 2 {
		t.Errorf("added P99: %+v", r.AddedP99)
	}
}

func TestMarkdown(t *testing.T) {
	r := &Report{Pinning: "CPU 0 and 1", Pinned: true, Date: "2024-01-01T00:00:00Z", Command: "make bench-compare BENCH_COMPARE_ARGS='-runs 2'",
		Runs: 2, Duration: "5s", Measurements: sampleMeasurements(), Machine: Machine{NumCPU: 2, CPUModel: "Test CPU"}}
	r.summarize()
	md := r.Markdown()
	for _, want := range []string{
		"nproc 2, Test CPU", "pinning: CPU 0 and 1", "`make bench-compare BENCH_COMPARE_ARGS='-runs 2'`", tableHeader,
		"| bare | closed 64 | 30000 (20000–40000) | 40.0 | – | – | – | – | – | – | 0 | – | – | – | ×3.00 | ×0.50 | – | 200:200 |\n",
		"| naive | open @ 5000 req/s | 5000 | 90.0 | 45.0 | 0.40 | 2.00 | 0.25 | 1.50 | – | 0 | 3.0 | 0.5 | 60/100 | ×1.00 | ×1.00 | ×1.00 | 200:80 |\n",
		"| l1gw-exact | closed 64 | 15000 | 60.0 | 15.0 (10.0–20.0) | – | – | – | – | 1.20 | 7 | 30.0 (20.0–40.0) | 16.5 (11.0–22.0) | 102 (101–102)/100 + 2 (0–3) degraded |",
		"run 1, l1gw-exact, closed 64: 7 of 0 responses were X-RateLimit-Status: degraded; gateway's degraded decisions by reason: none; Redis' worst PING round trip meanwhile: 20.0 ms (one PING every 5 ms: a silence of up to 36.0 ms fits it); its CPU's worst stall: 11.0 ms; the host's TCP sent nothing again over the load",
		"run 2, l1gw-exact, closed 64: the Redis probe could not run at real-time priority",
		"- l1gw-exact: +1.50 (+1.00 to +2.00) ms",
		"run 2, l1gw-exact, closed 64: OVER-ADMISSION: the limited tenant got 102 admitted marked ok",
		"run 2, l1gw-exact, closed 64: the limited tenant got 3 more admitted marked degraded (fail open: not bounded by the limit), beside 102 marked ok; its limit is 100",
		"7 of 0 responses were X-RateLimit-Status: degraded",
		"| system | load | decisions per call | shared a script call, % |",
		"| l1gw-exact | closed 64 | 4.5 (3.0–6.0) | 85 (80–90) |\n",
		"run 2, naive, open: Redis' slowest PING took 997.0 ms, sent 4.12 s into the probe's 5.03 s, answered; its CPU's worst stall: 0.5 ms; Redis' own latency monitor: none of its events took 50 ms; the host took 10 ms of its CPU over the load (steal); the host's TCP over the load: TCPLossProbes=1",
		"run 1, l1gw-exact, closed 64: Redis' own latency monitor, worst ms by event: command=120, expire-cycle=55",
		"run 1, naive, open: the runner's CPU (Redis') ran nothing for 963.0 ms: the probe, at real-time priority, woke that late from a sleep, of which the host counted 0 ms as steal over the whole load; the host's TCP sent nothing again over the load",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "run 1, l1gw-exact, closed 64: the limited tenant got") {
		t.Errorf("a note of degraded admissions where there were none:\n%s", md)
	}
	if strings.Contains(md, "run 2, naive, open: the runner's CPU") {
		t.Errorf("a note for a stall of 0.5 ms:\n%s", md)
	}
	if strings.Contains(md, "run 1, naive, open: Redis' slowest PING") {
		t.Errorf("a note for a PING of 3 ms:\n%s", md)
	}
	if strings.Contains(md, "| l1gw-exact | open @") && strings.Count(md, "| l1gw-exact | open @") != 1 {
		t.Errorf("a batch row for a measurement without batches:\n%s", md)
	}
	if !strings.Contains(md, "Added P99 over bare at half load") {
		t.Errorf("Markdown lacks the half-load heading:\n%s", md)
	}
	r.OpenRate = 4000
	if md := r.Markdown(); !strings.Contains(md, "Added P99 over bare at 4000 req/s (every system at that rate") {
		t.Errorf("with -open-rate, Markdown lacks its heading:\n%s", md)
	}
	if strings.Contains(md, "no CPU pinning") {
		t.Error("pinned run says it is not pinned")
	}
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	r := &Report{Measurements: sampleMeasurements()}
	r.summarize()
	if err := r.Write(dir, "# md\n"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "bench-compare.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || len(back.Rows) != 6 || back.Measurements[0].Codes[200] != 100 {
		t.Errorf("JSON round trip: %v, %d rows", err, len(back.Rows))
	}
	if md, err := os.ReadFile(filepath.Join(dir, "bench-compare.md")); err != nil || string(md) != "# md\n" {
		t.Errorf("Markdown file: %q, %v", md, err)
	}
	if err := r.Write(filepath.Join(dir, "bench-compare.md", "x"), ""); err == nil {
		t.Error("no error writing under a file")
	}
}
