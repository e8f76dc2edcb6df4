package limiter

import (
	"math"
	"sync"
	"time"
)

// Rule algorithms (Rule.Algorithm).
const (
	// AlgoSlidingLog records every admitted unit with its time: exact, and
	// as much memory per rule as the cost admitted in a window.
	AlgoSlidingLog = "sliding_log"
	// AlgoSlidingWindow is the two-bucket weighted counter: the count of
	// the current fixed bucket plus the previous bucket's weighted by how
	// much of it the window still covers. O(1) memory; an approximation
	// of the log (README: "Algorithms").
	AlgoSlidingWindow = "sliding_window"
	// AlgoFixed counts per calendar period (Rule.Period): a quota that
	// resets when the period ends.
	AlgoFixed = "fixed"
)

// Calendar periods of a fixed rule (Rule.Period).
const (
	PeriodDay   = "day"
	PeriodWeek  = "week" // Monday to Monday
	PeriodMonth = "month"
)

// algo is a rule's algorithm as the scripts take it.
type algo uint8

const (
	algoLog algo = iota
	algoWindow
	algoFixed
)

// algo is r's algorithm; an unknown one (refused by validation) counts
// as the log.
func (r Rule) algo() algo {
	switch r.Algorithm {
	case AlgoSlidingWindow:
		return algoWindow
	case AlgoFixed:
		return algoFixed
	}
	return algoLog
}

// Counted reports whether r is a counter (sliding_window or fixed) rather
// than a log.
func (r Rule) Counted() bool { return r.algo() != algoLog }

// Lookback is how far back the state r counts by may reach: its window
// for a log, two for a sliding window (the previous bucket). Zero for a
// fixed rule: a quota's count lost to a restart or an eviction stays lost
// until its period ends, and marking every decision degraded until then
// would say nothing useful; the README says so.
func (r Rule) Lookback() time.Duration {
	switch r.algo() {
	case algoWindow:
		return 2 * r.Window
	case algoFixed:
		return 0
	}
	return r.Window
}

// peekable reports whether replica consistency can decide rules on the
// replica, with this gateway's pending admissions: every rule a sliding
// log of the tenant's own. Counters have no pending log to add to a
// replica's count; a concurrency limit is exact or nothing (a replica
// shows a lease given back a moment ago as held); a shared limit's pending
// admissions would be other tenants'. Such requests are decided on the
// primary.
func peekable(rules []Rule) bool {
	return logOnly(rules) && !HasLease(rules) && !hasScope(rules)
}

// logOnly reports whether every rule is a sliding log.
func logOnly(rules []Rule) bool {
	for _, r := range rules {
		if r.algo() != algoLog {
			return false
		}
	}
	return true
}

// slideWindow is a sliding_window rule's state, in µs: c counted in the
// fixed bucket b (now / win) and p in the bucket before it. decide.lua
// keeps the same numbers in a hash and computes the same way (the carry
// in IEEE doubles, as Lua does), so both stores decide alike.
type slideWindow struct{ b, c, p, win int64 }

// roll moves w to the bucket of now. A clock gone back keeps the bucket.
// A state kept by another window (a reload changed it) takes all it counts
// at now, by its own window, into the bucket of window that holds the
// start of its bucket of now, as window.lua's window_at does: nothing
// counted is lost, it slides out by the new window, and a count converted
// back and forth is never dated later than its bucket began.
func (w *slideWindow) roll(now, window int64) {
	if was := w.win; was != window {
		w.win = window
		if was != 0 {
			w.step(now, was)
			used, bucket := w.used(now, was), now/window
			at := min(w.b*was/window, bucket)
			w.b, w.c, w.p = bucket, 0, 0
			switch at {
			case bucket:
				w.c = used
			case bucket - 1:
				w.p = used
			}
			return
		}
	}
	w.step(now, window)
}

// step moves w to the bucket of now by window, the one it counts by.
func (w *slideWindow) step(now, window int64) {
	bucket := now / window
	switch {
	case w.b >= bucket:
		return
	case w.b == bucket-1:
		w.p, w.c = w.c, 0
	default:
		w.p, w.c = 0, 0
	}
	w.b = bucket
}

// weighted is q weighted by the part of its bucket a window ending elapsed
// µs into the next bucket still covers, rounded down.
func weighted(q, window, elapsed int64) int64 {
	if q == 0 {
		return 0
	}
	return int64(math.Floor(float64(q) * float64(window-elapsed) / float64(window)))
}

// used is the weighted count at now (w rolled to now).
func (w *slideWindow) used(now, window int64) int64 {
	return w.c + weighted(w.p, window, max(now-w.b*window, 0))
}

// retry is how long, in µs, until a request of cost fits if nothing more
// is admitted: inside this bucket once the carry has shrunk enough, else
// in the next bucket once this one's carry has. The window when it never
// fits (cost above the limit).
func (w *slideWindow) retry(now, window, limit, cost int64) int64 {
	if cost > limit {
		return window
	}
	start := w.b * window
	if cost <= limit-w.c { // not c+cost: no overflow near a limit of 2^63
		return max(start+firstFit(w.p, limit-w.c-cost, window)-now, 1)
	}
	return max(start+window+firstFit(w.c, limit-cost, window)-now, 1)
}

// firstFit is the first µs x of a bucket at which weighted(q, window, x) <= l.
func firstFit(q, l, window int64) int64 {
	if q <= l {
		return 0
	}
	x := int64(math.Floor(float64(window)-float64(l+1)*float64(window)/float64(q))) + 1
	x = min(max(x, 0), window)
	for x > 0 && weighted(q, window, x-1) <= l {
		x--
	}
	for x < window && weighted(q, window, x) > l {
		x++
	}
	return x
}

// reset is how long, in µs, until everything w counts has left the window.
func (w *slideWindow) reset(now, window int64) int64 {
	switch {
	case w.c > 0:
		return (w.b+2)*window - now
	case w.p > 0:
		return (w.b+1)*window - now
	}
	return 0
}

// Bounds returns the calendar period of fixed rule r that holds now: it
// starts at start and ends at end, in loc. Days start at midnight, weeks
// on Monday, months on day Anchor (1 when unset), clamped to the month's
// last day.
func (r Rule) Bounds(loc *time.Location, now time.Time) (start, end time.Time) {
	t := now.In(loc)
	y, m, d := t.Date()
	switch r.Period {
	case PeriodWeek:
		d -= (int(t.Weekday()) + 6) % 7
		return time.Date(y, m, d, 0, 0, 0, 0, loc), time.Date(y, m, d+7, 0, 0, 0, 0, loc)
	case PeriodMonth:
		start = anchored(y, m, r.Anchor, loc)
		if t.Before(start) {
			start = anchored(y, m-1, r.Anchor, loc)
		}
		y, m, _ = start.Date()
		return start, anchored(y, m+1, r.Anchor, loc)
	}
	return time.Date(y, m, d, 0, 0, 0, 0, loc), time.Date(y, m, d+1, 0, 0, 0, 0, loc)
}

// anchored is midnight of day anchor of month m (normalised, so m may be 0
// or 13), clamped to the month's last day.
func anchored(y int, m time.Month, anchor int, loc *time.Location) time.Time {
	first := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(max(anchor, 1), last)-1)
}

// zones resolves fixed rules' time zones once: LoadLocation reads the
// zone database. The zero value is ready.
type zones struct{ m sync.Map }

// load is the zone named name; UTC for "" and for a name validation
// should have refused.
func (z *zones) load(name string) *time.Location {
	if name == "" || name == "UTC" {
		return time.UTC
	}
	if loc, ok := z.m.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = time.UTC
	}
	z.m.Store(name, loc)
	return loc
}

// span is a fixed rule's period in unix µs.
type span struct{ start, end int64 }

// fillPeriods sets p[i] to the period at now of each fixed rule among
// rules; the others' are left alone.
func fillPeriods(z *zones, rules []Rule, now time.Time, p *[MaxRules]span) {
	for i, r := range rules {
		if r.algo() == algoFixed {
			start, end := r.Bounds(z.load(r.Timezone), now)
			p[i] = span{start.UnixMicro(), end.UnixMicro()}
		}
	}
}
