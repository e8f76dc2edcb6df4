// Package timeline is the load runners' view of an attack second by
// second: latency percentiles, responses by status and the degraded
// ratio per second of send time, with the fault windows of the run, and
// the self-contained HTML page (inline SVG, no script, nothing fetched)
// that plots them next to a runner's Markdown report.
package timeline

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// Timeline is one attack (a chaos scenario, a load scenario) per second.
type Timeline struct {
	// Name names the attack: the scenario.
	Name string `json:"name"`
	// Seconds are the attack's seconds in order, from its start; a second
	// without a request has Requests 0.
	Seconds []Second `json:"seconds"`
	// Windows are the faults injected during the attack, in order.
	Windows []Window `json:"windows,omitempty"`
}

// Second is what the requests sent in one second of an attack saw.
type Second struct {
	// T is the second's start, in seconds since the attack's start.
	T int `json:"t"`
	// Length is how much of the second the attack lasted, in seconds: 1
	// but for the last second of an attack whose end is known (End).
	Length float64 `json:"length_s"`
	// Requests is how many requests were sent in the second.
	Requests int `json:"requests"`
	// P50Ms and P99Ms are their exact latency percentiles, in ms.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// Codes counts them by status; "0" is no response.
	Codes map[string]int `json:"codes"`
	// Degraded counts responses with X-RateLimit-Status: degraded.
	Degraded int `json:"degraded"`
}

// Window is a fault: from its injection to the moment the runner saw
// Redis healthy again, in seconds since the attack's start. From == To
// for a fault that is over once injected (SCRIPT FLUSH).
type Window struct {
	// Name names the fault: its phase.
	Name string `json:"name"`
	// From and To are its start and end, in seconds to the ms.
	From float64 `json:"from"`
	To   float64 `json:"to"`
}

// Builder collects an attack's results into a Timeline. It keeps every
// latency until Timeline is called (8 bytes a request).
type Builder struct {
	start   time.Time
	end     time.Time
	lat     [][]time.Duration
	codes   []map[string]int
	degrade []int
	windows []Window
}

// NewBuilder starts a timeline at start, or, for a zero start, at the
// send time of the first result added: results sent before the start are
// counted in its first second.
func NewBuilder(start time.Time) *Builder { return &Builder{start: start} }

// Add counts one request sent at at: its latency, its status (0: no
// response) and whether it was marked degraded.
func (b *Builder) Add(at time.Time, latency time.Duration, code int, degraded bool) {
	if b.start.IsZero() {
		b.start = at
	}
	i := max(int(at.Sub(b.start)/time.Second), 0)
	for len(b.lat) <= i {
		b.lat = append(b.lat, nil)
		b.codes = append(b.codes, map[string]int{})
		b.degrade = append(b.degrade, 0)
	}
	b.lat[i] = append(b.lat[i], latency)
	b.codes[i][strconv.Itoa(code)]++
	if degraded {
		b.degrade[i]++
	}
}

// Fault records a fault window from from to to (to may equal from).
func (b *Builder) Fault(name string, from, to time.Time) {
	if to.Before(from) {
		to = from
	}
	b.windows = append(b.windows, Window{Name: name, From: b.secs(from), To: b.secs(to)})
}

// End marks when the attack stopped sending: the last second's Length.
func (b *Builder) End(t time.Time) { b.end = t }

// secs is t in seconds since the start, to the millisecond.
func (b *Builder) secs(t time.Time) float64 {
	return math.Round(t.Sub(b.start).Seconds()*1000) / 1000
}

// Timeline is the attack so far, named name.
func (b *Builder) Timeline(name string) Timeline {
	tl := Timeline{Name: name, Seconds: make([]Second, len(b.lat)), Windows: slices.Clone(b.windows)}
	for i, lat := range b.lat {
		s := Second{T: i, Length: 1, Requests: len(lat), Codes: b.codes[i], Degraded: b.degrade[i]}
		if i == len(b.lat)-1 && !b.end.IsZero() {
			s.Length = min(max(b.secs(b.end)-float64(i), 0.001), 1)
		}
		if len(lat) > 0 {
			slices.Sort(lat)
			s.P50Ms, s.P99Ms = quantileMs(lat, 0.50), quantileMs(lat, 0.99)
		}
		tl.Seconds[i] = s
	}
	return tl
}

// quantileMs is the exact q-quantile of sorted lat, in ms to the µs.
func quantileMs(lat []time.Duration, q float64) float64 {
	i := max(int(math.Ceil(q*float64(len(lat))))-1, 0)
	return float64(lat[i].Microseconds()) / 1000
}

// end is the timeline's length in seconds: its last second or the end
// of its last window, whichever is later; at least 1.
func (tl *Timeline) end() float64 {
	end := float64(len(tl.Seconds))
	for _, w := range tl.Windows {
		end = max(end, w.To)
	}
	return max(end, 1)
}
