package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// phaseMark starts a phase of a chaos run. A fault mark starts a fault; a
// heal mark is the moment Redis is healthy again, from which recovery is
// timed.
type phaseMark struct {
	name  string
	at    time.Time
	fault bool
	heal  bool
}

// PhaseCount is a count of the samples of one phase.
type PhaseCount struct {
	Phase string `json:"phase"`
	N     int    `json:"n"`
}

// countByPhase counts the samples pred picks in each phase of marks (a
// sample belongs to the last phase begun when it was sent; the samples
// and the marks in time order).
func countByPhase(marks []phaseMark, ss []sample, pred func(*sample) bool) []PhaseCount {
	out := make([]PhaseCount, len(marks))
	for i, m := range marks {
		out[i].Phase = m.name
	}
	i := 0
	for k := range ss {
		s := &ss[k]
		for i+1 < len(marks) && !s.at.Before(marks[i+1].at) {
			i++
		}
		if len(marks) > 0 && pred(s) {
			out[i].N++
		}
	}
	return out
}

// phaseCounts is counts as "before 1, primary-killed 0".
func phaseCounts(counts []PhaseCount) string {
	parts := make([]string, len(counts))
	for i, c := range counts {
		parts[i] = fmt.Sprintf("%s %d", c.Phase, c.N)
	}
	return strings.Join(parts, ", ")
}

// PhaseResult is what the load saw during one phase (or the whole run).
type PhaseResult struct {
	// Name names the phase.
	Name string `json:"name"`
	// Seconds is the phase's length.
	Seconds float64 `json:"seconds"`
	// Requests is how many requests were sent during the phase.
	Requests int `json:"requests"`
	// StatusCodes counts them by status; "0" is no response.
	StatusCodes map[string]int `json:"status_codes"`
	// Degraded counts responses with X-RateLimit-Status: degraded.
	Degraded int `json:"degraded"`
	// Unmarked counts responses without X-RateLimit-Status ok or degraded.
	Unmarked int `json:"unmarked"`
	// LatencyMs is the latency distribution (exact percentiles).
	LatencyMs harness.Latency `json:"latency_ms"`
	// Limited is the limited tenant's admissions.
	Limited Admissions `json:"limited"`
	// Redis is what probes of Redis saw, in a phase where it was healthy.
	Redis *RedisSeen `json:"redis,omitempty"`
}

// Admissions compares the limited tenant's 200s with what an exact
// sliding-window limiter can admit in the same span: at most the limit in
// any window, so limit × ⌈span / window⌉ in the span.
type Admissions struct {
	// Admitted counts 200 responses.
	Admitted int `json:"admitted"`
	// Bound is limit × ⌈seconds / window⌉.
	Bound int `json:"bound"`
	// Over is Admitted − Bound when positive: admissions no exact limiter
	// would have made.
	Over int `json:"over"`
}

// Recovery is the time from a heal mark (Redis healthy again) to the
// first request after which every response until the next fault is
// X-RateLimit-Status: ok. 0 when every response since the mark was ok;
// nil Ms when the responses never settled to ok.
type Recovery struct {
	// After names the phase the heal mark started.
	After string `json:"after"`
	// Ms is the recovery time in milliseconds.
	Ms *float64 `json:"ms"`
}

// summarize is the PhaseResult of the samples sent in [from, to); ss is
// sorted by send time.
func summarize(name string, ss []sample, from, to time.Time, limit int) PhaseResult {
	lo, _ := slices.BinarySearchFunc(ss, from, func(s sample, t time.Time) int { return s.at.Compare(t) })
	hi, _ := slices.BinarySearchFunc(ss, to, func(s sample, t time.Time) int { return s.at.Compare(t) })
	ss = ss[lo:hi]
	secs := to.Sub(from).Seconds()
	p := PhaseResult{Name: name, Seconds: math.Round(secs*100) / 100, Requests: len(ss), StatusCodes: map[string]int{}}
	lat := make([]time.Duration, 0, len(ss))
	for _, s := range ss {
		p.StatusCodes[strconv.Itoa(int(s.code))]++
		lat = append(lat, s.latency)
		switch s.state {
		case stateDegraded:
			p.Degraded++
		case stateMissing:
			p.Unmarked++
		}
		if s.limited && s.code == 200 {
			p.Limited.Admitted++
		}
	}
	p.LatencyMs = percentiles(lat)
	p.Limited.Bound = limit * int(math.Ceil(secs/chaosWindow.Seconds()-1e-9))
	p.Limited.Over = max(0, p.Limited.Admitted-p.Limited.Bound)
	return p
}

// percentiles are exact percentiles of lat (sorted in place), in ms.
func percentiles(lat []time.Duration) harness.Latency {
	if len(lat) == 0 {
		return harness.Latency{}
	}
	slices.Sort(lat)
	q := func(f float64) float64 {
		i := int(math.Ceil(f*float64(len(lat)))) - 1
		return harness.Ms(lat[max(i, 0)])
	}
	return harness.Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: harness.Ms(lat[len(lat)-1])}
}

// splitPhases summarizes each phase (a mark to the next, the last to end)
// and the whole run.
func splitPhases(marks []phaseMark, ss []sample, end time.Time, limit int) (phases []PhaseResult, total PhaseResult) {
	for i, m := range marks {
		to := end
		if i+1 < len(marks) {
			to = marks[i+1].at
		}
		phases = append(phases, summarize(m.name, ss, m.at, to, limit))
	}
	start := end
	if len(marks) > 0 {
		start = marks[0].at
	}
	return phases, summarize("whole run", ss, start, end, limit)
}

// recoveries times the recovery after every heal mark; ss is sorted by
// send time.
func recoveries(marks []phaseMark, ss []sample) []Recovery {
	var out []Recovery
	for i, m := range marks {
		if !m.heal {
			continue
		}
		until := time.Time{} // the next fault, or the end
		for _, n := range marks[i+1:] {
			if n.fault {
				until = n.at
				break
			}
		}
		out = append(out, Recovery{After: m.name, Ms: recoveryMs(ss, m.at, until)})
	}
	return out
}

// recoveryMs is the time from healed to the first request after the last
// not-ok one sent in [healed, until) (zero until: to the end); 0 when
// there is none, nil when the last one is not-ok.
func recoveryMs(ss []sample, healed, until time.Time) *float64 {
	lastBad, next := -1, -1
	for i, s := range ss {
		if s.at.Before(healed) || (!until.IsZero() && !s.at.Before(until)) {
			continue
		}
		if s.state != stateOK {
			lastBad, next = i, -1
		} else if next < 0 {
			next = i
		}
	}
	var d time.Duration
	switch {
	case lastBad < 0:
	case next < 0:
		return nil
	default:
		d = ss[next].at.Sub(healed)
	}
	v := harness.Ms(d)
	return &v
}

// peakAdmitted is the most limited-tenant 200s sent within any one window.
func peakAdmitted(ss []sample, window time.Duration) int {
	return peakOf(ss, window, func(s *sample) bool { return s.limited && s.code == 200 })
}

// okAdmission: s is a limited-tenant admission marked ok.
func okAdmission(s *sample) bool { return s.limited && s.code == 200 && s.state == stateOK }

// peakAdmittedOK is the most limited-tenant admissions marked ok that
// were certainly decided within one window: each was decided between its
// send and its reply, so a set whose replies all came before its first
// send plus the window was. Counted by send time alone (within window
// less 50 ms, until 2026-12-02), requests slowed on a busy machine past
// the 50 ms made a set that Redis decided over more than a window look
// like one within it.
func peakAdmittedOK(ss []sample, window time.Duration) int {
	var ok []sample
	for i := range ss {
		if s := &ss[i]; okAdmission(s) {
			ok = append(ok, *s)
		}
	}
	slices.SortFunc(ok, func(a, b sample) int { return a.at.Compare(b.at) })
	peak := 0
	for i := range ok {
		end := ok[i].at.Add(window)
		n := 0
		for j := i; j < len(ok) && ok[j].at.Before(end); j++ {
			if ok[j].at.Add(ok[j].latency).Before(end) {
				n++
			}
		}
		peak = max(peak, n)
	}
	return peak
}

// peakSentOK is the most limited-tenant admissions marked ok sent within
// any window: an upper bound of what peakAdmittedOK counts.
func peakSentOK(ss []sample, window time.Duration) int {
	return peakOf(ss, window, okAdmission)
}

// slowestOK is the longest a limited-tenant admission marked ok took.
func slowestOK(ss []sample) time.Duration {
	var worst time.Duration
	for i := range ss {
		if s := &ss[i]; okAdmission(s) {
			worst = max(worst, s.latency)
		}
	}
	return worst
}

func countSamples(ss []sample, counts func(*sample) bool) int {
	n := 0
	for i := range ss {
		if counts(&ss[i]) {
			n++
		}
	}
	return n
}

func peakOf(ss []sample, window time.Duration, counts func(*sample) bool) int {
	var at []time.Time
	for i := range ss {
		if counts(&ss[i]) {
			at = append(at, ss[i].at)
		}
	}
	peak, lo := 0, 0
	for hi := range at {
		for at[hi].Sub(at[lo]) >= window {
			lo++
		}
		peak = max(peak, hi-lo+1)
	}
	return peak
}
