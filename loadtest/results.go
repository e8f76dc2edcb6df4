package main

import (
	"math"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
	"github.com/l1gw/l1gw/loadtest/internal/timeline"
)

// Result is one scenario's measurements.
type Result struct {
	// Scenario names the scenario.
	Scenario string `json:"scenario"`
	// Via is "upstream" (attacked directly) or "gateway".
	Via string `json:"via"`
	// RateWanted is the attack's rate in requests per second.
	RateWanted int `json:"rate_wanted"`
	// Duration is the attack's length.
	Duration string `json:"duration"`
	// Requests is how many requests were sent.
	Requests uint64 `json:"requests"`
	// RateAchieved is requests per second between the first and last send.
	RateAchieved float64 `json:"rate_achieved"`
	// StatusCodes counts responses by status; "0" is no response.
	StatusCodes map[string]int `json:"status_codes"`
	// Errors are up to five distinct transport errors.
	Errors []string `json:"errors,omitempty"`
	// LatencyMs is the latency distribution in milliseconds.
	LatencyMs harness.Latency `json:"latency_ms"`
	// Ratio compares the latency with the baseline of the same run; nil
	// without a baseline, and for the baseline itself.
	Ratio *Ratio `json:"ratio_to_baseline,omitempty"`
	// Gateway is the gateway process's resource use; nil for the baseline.
	Gateway *Usage `json:"gateway,omitempty"`
	// Limit is the exactness check of the limited scenario.
	Limit *LimitCheck `json:"limit,omitempty"`
	// Upload is the upload or download scenario's measurement; nil for
	// the others.
	Upload *Upload `json:"upload,omitempty"`
	// Reloads is the reload scenario's reloads; nil for the others.
	Reloads *Reloads `json:"reloads,omitempty"`
	// Notes are anomalies worth a look.
	Notes []string `json:"notes,omitempty"`
	// Timeline is the attack per second, plotted in results.html; nil
	// for upload, download and idle-slowloris.
	Timeline *timeline.Timeline `json:"timeline,omitempty"`
}

// Ratio is a gateway scenario's latency over the baseline's.
type Ratio struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// Usage is the gateway process's resource use over one scenario.
type Usage struct {
	// RSSBeforeKB and RSSAfterKB are VmRSS before and after the attack.
	RSSBeforeKB int64 `json:"rss_before_kb"`
	RSSAfterKB  int64 `json:"rss_after_kb"`
	// CPUMs is user+system CPU time spent during the attack (10 ms
	// resolution).
	CPUMs int64 `json:"cpu_ms"`
	// CPUMsPer1k is CPUMs per 1000 requests.
	CPUMsPer1k float64 `json:"cpu_ms_per_1000_requests"`
	// WarnLines counts the gateway's WARN and ERROR log lines since start;
	// WarnMsgs counts them by message.
	WarnLines int            `json:"warn_lines"`
	WarnMsgs  map[string]int `json:"warn_msgs,omitempty"`
	// Held is what connections holding declared bodies cost; nil without.
	Held *Held `json:"held,omitempty"`
	// Pressure is the idle and slowloris connections held through the
	// attack; nil without.
	Pressure *Pressure `json:"pressure,omitempty"`
}

// Pressure is the idle and slowloris connections of idle-slowloris, and
// the same attack without them, alternated in rounds on one gateway.
type Pressure struct {
	// Idle and Slowloris are how many the runner keeps open.
	Idle      int `json:"idle"`
	Slowloris int `json:"slowloris"`
	// Rounds is each round's latency alone and beside them.
	Rounds []Round `json:"rounds"`
	// Alone is the latency of every round's attack alone, together (the
	// scenario's own latency is that of the attacks beside them), and
	// AloneCPUMsPer1k the gateway's CPU over them.
	Alone           harness.Latency `json:"alone_ms"`
	AloneCPUMsPer1k float64         `json:"alone_cpu_ms_per_1000_requests"`
	// OpenAtStart and OpenAtEnd are the fewest open when an attack started
	// and ended; Ended how many the gateway ended in all (each opened
	// again); DialFailures how many dials failed and were tried again,
	// most while they were being opened.
	OpenAtStart  int   `json:"open_at_start"`
	OpenAtEnd    int   `json:"open_at_end"`
	Ended        int64 `json:"ended"`
	DialFailures int64 `json:"dial_failures"`
	// RSSGrowthKB is the most VmRSS with them all open less before them.
	RSSGrowthKB int64 `json:"rss_growth_kb"`
}

// held is u's Held; nil for a nil u.
func (u *Usage) held() *Held {
	if u == nil {
		return nil
	}
	return u.Held
}

// Held is the gateway's memory with connections that declared a 10 MiB
// body each and sent none of it, measured 1 s after they were opened,
// before the attack.
type Held struct {
	// Conns is how many were opened; Open how many the gateway held when
	// measured (it closes them at server.read_timeout).
	Conns int `json:"conns"`
	Open  int `json:"open"`
	// RSSGrowthKB is VmRSS then less VmRSS before the connections.
	RSSGrowthKB int64 `json:"rss_growth_kb"`
}

// LimitCheck compares admitted requests with the limit: the sliding window
// starts empty, so over d at a rate above the limit it admits limit per
// started second of d.
type LimitCheck struct {
	// PerSecond is the tenant's limit per 1 s window.
	PerSecond int64 `json:"per_second"`
	// Expected is PerSecond × d rounded up to whole seconds.
	Expected int64 `json:"expected"`
	// Admitted and Denied count 200 and 429 responses.
	Admitted int `json:"admitted"`
	Denied   int `json:"denied"`
	// RelErr is (Admitted − Expected) / Expected.
	RelErr float64 `json:"rel_err"`
}

// newResult summarises vegeta's metrics.
func newResult(sc scenario, o options, via string, m *vegeta.Metrics, errs []string) Result {
	return Result{
		Scenario:     sc.name,
		Via:          via,
		RateWanted:   o.rate,
		Duration:     o.duration.String(),
		Requests:     m.Requests,
		RateAchieved: m.Rate,
		StatusCodes:  m.StatusCodes,
		Errors:       errs,
		LatencyMs:    latency(m),
	}
}

// newUsage is the gateway's use: RSS from before the scenario set up
// anything to after the attack, and cpuTicks, the CPU over the attack
// alone, so that accepting held connections is not billed to requests.
func newUsage(before, after harness.ProcSample, cpuTicks int64, requests uint64) *Usage {
	return &Usage{
		RSSBeforeKB: before.RSSKB,
		RSSAfterKB:  after.RSSKB,
		CPUMs:       cpuTicks * 1000 / harness.UserHZ,
		CPUMsPer1k:  perThousand(cpuTicks, requests),
	}
}

// newLimitCheck is the exactness check of an exact scenario over d.
func newLimitCheck(sc scenario, d time.Duration, codes map[string]int) *LimitCheck {
	secs := int64(math.Ceil(d.Seconds()))
	c := &LimitCheck{
		PerSecond: sc.limit,
		Expected:  sc.limit * secs,
		Admitted:  codes["200"],
		Denied:    codes["429"],
	}
	c.RelErr = float64(int64(c.Admitted)-c.Expected) / float64(c.Expected)
	return c
}

// compareWithBaseline sets every gateway result's Ratio from the baseline
// result of the same run, if there is one.
func (r *Report) compareWithBaseline() {
	var base *Result
	for i := range r.Results {
		if r.Results[i].Via == "upstream" {
			base = &r.Results[i]
		}
	}
	if base == nil || base.LatencyMs.P50 <= 0 || base.LatencyMs.P99 <= 0 {
		return
	}
	for i := range r.Results {
		res := &r.Results[i]
		if res.Via == "gateway" {
			res.Ratio = &Ratio{P50: res.LatencyMs.P50 / base.LatencyMs.P50, P99: res.LatencyMs.P99 / base.LatencyMs.P99}
		}
	}
}
