package limiter

import (
	"time"
)

// maybeSweep drops expired entries and the empty logs of keys no longer
// decided (an anonymous client gone away) that no decision reads. Called
// with mu held.
func (sh *pendingShard) maybeSweep(now time.Time) {
	if now.Sub(sh.lastSweep) < pendingSweep {
		return
	}
	sh.lastSweep = now
	for k, lg := range sh.logs {
		lg.expire(now.Add(-lg.window))
		if lg.empty() && lg.readers == 0 {
			delete(sh.logs, k)
		}
	}
}

// append adds e as the newest entry and returns its ordinal: the log's
// ordinals are consecutive, so a replica that names the last one recorded
// (record.lua's high-water hash) says how many of the entries it shows.
func (l *pendingLog) append(e pendingEntry) int64 {
	switch {
	case len(l.entries) == 0:
		l.mixed = false
	case e.cost != l.entries[0].cost:
		l.mixed = true
	}
	e.ord = l.next
	l.next++
	l.entries = append(l.entries, e)
	l.appended += e.cost
	return e.ord
}

// forget drops entries from the front until dropped reaches upTo.
func (l *pendingLog) forget(upTo uint64) {
	n := 0
	for n < len(l.entries) && l.dropped < upTo {
		n++
		l.dropped++
	}
	l.entries = l.entries[n:]
}

// expire drops entries at or before cutoff, recorded or not: out of the
// window anyway.
func (l *pendingLog) expire(cutoff time.Time) {
	n := 0
	for n < len(l.entries) && !l.entries[n].at.After(cutoff) {
		n++
	}
	l.entries = l.entries[n:]
	l.dropped += uint64(n)
	n = 0
	for n < len(l.unrecorded) && !l.unrecorded[n].at.After(cutoff) {
		n++
	}
	l.unrecorded = l.unrecorded[n:]
}

// unrecord takes the newest entry, whose record the recorder did not take,
// out of the ordinals (the next admission takes its ordinal) and out of
// appended, into unrecorded, which every decision counts (settle). It runs
// under the lock its append ran under: no snapshot saw it appended.
func (l *pendingLog) unrecord() {
	last := len(l.entries) - 1
	l.unrecorded = append(l.unrecorded, l.entries[last])
	l.appended -= l.entries[last].cost
	l.entries = l.entries[:last]
	l.next--
}

// unrecordedCost is the cost of the unrecorded admissions.
func (l *pendingLog) unrecordedCost() int64 {
	var c int64
	for _, e := range l.unrecorded {
		c += e.cost
	}
	return c
}

// empty reports whether the log holds nothing to count.
func (l *pendingLog) empty() bool { return len(l.entries) == 0 && len(l.unrecorded) == 0 }

// freedAfter is how long until units of cost of the pending entries have
// left a window (at least 1ns), walking from the oldest.
func (l *pendingLog) freedAfter(units int64, window time.Duration, now time.Time) time.Duration {
	for _, e := range l.entries {
		if units -= e.cost; units <= 0 {
			return max(e.at.Add(window).Sub(now), time.Nanosecond)
		}
	}
	return window
}

func (l *pendingLog) oldest() (time.Time, bool) {
	if l == nil || len(l.entries) == 0 {
		return time.Time{}, false
	}
	return l.entries[0].at, true
}
