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

// forget drops entries from the front until dropped reaches upTo: the
// replica shows them. An entry whose record failed (lost) it only takes
// for shown, by a later record's high-water mark: it moves to unrecorded,
// and forget returns the cost of those it moved.
func (l *pendingLog) forget(upTo uint64) (lost int64) {
	lost = l.lostUpTo(upTo)
	n := 0
	for n < len(l.entries) && l.dropped < upTo {
		if l.entries[n].lost {
			l.keepUnrecorded(l.entries[n])
		}
		n++
		l.dropped++
	}
	l.entries = l.entries[n:]
	return lost
}

// lostUpTo is the cost of the entries whose record failed among those
// before upTo (counted as dropped is): a read whose mark passed them took
// them for shown.
func (l *pendingLog) lostUpTo(upTo uint64) int64 {
	var c int64
	for i := 0; i < len(l.entries) && l.dropped+uint64(i) < upTo; i++ {
		if l.entries[i].lost {
			c += l.entries[i].cost
		}
	}
	return c
}

// keepUnrecorded adds e to unrecorded, oldest first (expire walks them so).
func (l *pendingLog) keepUnrecorded(e pendingEntry) {
	i := len(l.unrecorded)
	for i > 0 && l.unrecorded[i-1].at.After(e.at) {
		i--
	}
	l.unrecorded = append(l.unrecorded, pendingEntry{})
	copy(l.unrecorded[i+1:], l.unrecorded[i:])
	l.unrecorded[i] = e
}

// lost takes rec's admission, which the primary did not take (an error:
// its members may be on no node), for never shown. Its entry keeps its
// ordinal, for the replica's high-water mark counts the entries before
// it; once a later record's mark passes it, it is counted as unrecorded
// (forget), as it is at once if a mark passed it already.
func (sh *pendingShard) lost(rec record) {
	m := len(rec.keys) / 2
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for j := range m {
		window, _ := rec.args[2+3*j].(int64)
		cost, _ := rec.args[3+3*j].(int64)
		ord, _ := rec.args[4+3*j].(int64)
		key := rec.keys[j]
		lg := sh.logs[key]
		if lg == nil {
			lg = sh.newLog(key, Rule{Window: time.Duration(window) * time.Microsecond})
		}
		if first := lg.next - int64(len(lg.entries)); ord >= first && ord < lg.next {
			lg.entries[ord-first].lost = true
			continue
		}
		lg.keepUnrecorded(pendingEntry{costArg: cost, cost: cost, at: rec.at})
	}
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

// unseenCost is the cost of the admissions no node may hold: unrecorded,
// and the entries whose record failed.
func (l *pendingLog) unseenCost() int64 {
	c := l.unrecordedCost()
	for _, e := range l.entries {
		if e.lost {
			c += e.cost
		}
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
