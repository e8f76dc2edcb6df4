package main

import (
	"math"
	"sort"
	"strconv"
	"strings"
)

// The histograms read from a system's /metrics: how long requests waited
// for their rate-limit decision (the gateway's own, and the naive
// forwarder's EVALSHA under the same name), and the gateway's calls to
// Redis, each a batch of decisions (every node's, summed).
const (
	decisionMetric  = "l1gw_decision_duration_seconds_bucket{"
	redisCallMetric = "l1gw_redis_call_duration_seconds_bucket{"
)

// buckets is a VictoriaMetrics histogram as scraped: the count of each
// vmrange ("1.000e-04...1.136e-04"), not cumulative.
type buckets map[string]uint64

// parseBuckets picks the buckets of metric (a histogram's name with
// "_bucket{") out of a Prometheus text exposition, summed over its other
// labels.
func parseBuckets(text, metric string) buckets {
	out := buckets{}
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, metric)
		if !ok {
			continue
		}
		_, rest, ok = strings.Cut(rest, `vmrange="`)
		if !ok {
			continue
		}
		vmrange, value, ok := strings.Cut(rest, `"}`)
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64); err == nil {
			out[vmrange] += n
		}
	}
	return out
}

// quantiles are the P50 and P99, in ms, of what was counted between the
// scrapes before and after: the upper bound of the bucket holding each
// (VictoriaMetrics buckets are about 13% wide), so never below the truth.
// ok is false when nothing was counted.
func quantiles(before, after buckets) (p50, p99 float64, ok bool) {
	type bucket struct {
		upper float64
		n     uint64
	}
	var bs []bucket
	var total uint64
	for vmrange, n := range after {
		n -= min(n, before[vmrange])
		_, hi, found := strings.Cut(vmrange, "...")
		upper, err := strconv.ParseFloat(hi, 64)
		if n == 0 || !found || err != nil {
			continue
		}
		bs = append(bs, bucket{upper, n})
		total += n
	}
	if total == 0 {
		return 0, 0, false
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].upper < bs[j].upper })
	quantile := func(q float64) float64 {
		rank := uint64(math.Ceil(q * float64(total)))
		var seen uint64
		for _, b := range bs {
			seen += b.n
			if seen >= rank {
				return b.upper * 1000
			}
		}
		return bs[len(bs)-1].upper * 1000
	}
	return quantile(0.50), quantile(0.99), true
}

// batchCounts are the gateway's decision-batch counters as scraped, every
// node's summed: decisions (l1gw_decision_batch_size's sum), calls (its
// count) and decisions that shared a script call.
type batchCounts struct{ decisions, calls, shared float64 }

// parseBatches picks the batch counters out of a Prometheus text
// exposition; all zero for a system without them.
func parseBatches(text string) batchCounts {
	var c batchCounts
	for _, line := range strings.Split(text, "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(name, "l1gw_decision_batch_size_sum{"):
			c.decisions += v
		case strings.HasPrefix(name, "l1gw_decision_batch_size_count{"):
			c.calls += v
		case name == "l1gw_decisions_shared_total":
			c.shared += v
		}
	}
	return c
}

// over is what was counted between the scrapes before (c) and after: the
// decisions per call, and the share of the decisions, in %, that shared a
// script call. ok is false when no call was counted.
func (c batchCounts) over(after batchCounts) (size, sharedPct float64, ok bool) {
	decisions, calls := after.decisions-c.decisions, after.calls-c.calls
	if calls <= 0 || decisions <= 0 {
		return 0, 0, false
	}
	return decisions / calls, 100 * (after.shared - c.shared) / decisions, true
}
