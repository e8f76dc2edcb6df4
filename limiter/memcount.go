package limiter

import "time"

// memCount is a counter rule's state in the memory store, in µs as
// decide.lua keeps it: a sliding window's two buckets, or a fixed rule's
// count (w.c) in the period [start, end).
type memCount struct {
	w          slideWindow
	start, end int64 // fixed: the period counted, unix µs
	until      int64 // unix ns after which nothing counted is left (sweeping)
}

// count is r's counter. Called with the shard's mu held.
func (t *memTenant) count(r Rule) *memCount {
	if t.counts == nil {
		t.counts = make(map[memKey]*memCount, 1)
	}
	c := t.counts[memKeyOf(r)]
	if c == nil {
		c = &memCount{}
		t.counts[memKeyOf(r)] = c
	}
	return c
}

// micros is n µs as a Duration.
func micros(n int64) time.Duration { return time.Duration(n) * time.Microsecond }

// roll moves c to now (unix ns): the sliding window's bucket, or a fixed
// rule's period (in loc), counting from zero in a new one.
func (c *memCount) roll(loc *time.Location, now int64, r Rule) {
	if r.algo() == algoFixed {
		start, end := r.Bounds(loc, time.Unix(0, now))
		if s := start.UnixMicro(); c.start != s {
			c.start, c.end, c.w.c = s, end.UnixMicro(), 0
		}
		return
	}
	c.w.roll(now/1000, r.Window.Microseconds())
}

// check rolls c to now and reports whether a request of r's cost is over
// r's limit; when it is, it sets st.RetryAfter.
func (c *memCount) check(loc *time.Location, now int64, r Rule, st *RuleState) bool {
	c.roll(loc, now, r)
	us, cost := now/1000, r.CostOrOne()
	if r.algo() == algoFixed {
		if cost <= r.Limit-c.w.c { // not c+cost: no overflow near a limit of 2^63
			return false
		}
		st.RetryAfter = micros(max(c.end-us, 1))
		return true
	}
	win := r.Window.Microseconds()
	if cost <= r.Limit-c.w.used(us, win) {
		return false
	}
	st.RetryAfter = micros(c.w.retry(us, win, r.Limit, cost))
	return true
}

// settle records the request when it was admitted and r had room, and
// fills the rest of st. c was rolled to now by check.
func (c *memCount) settle(now int64, r Rule, allowed bool, st *RuleState) {
	us := now / 1000
	if allowed && !st.Denied() {
		c.w.c += r.CostOrOne()
	}
	if r.algo() == algoFixed {
		st.Window = micros(c.end - c.start)
		st.Remaining = max(r.Limit-c.w.c, 0)
		st.Reset = micros(max(c.end-us, 1))
		c.until = c.end * 1000
		return
	}
	win := r.Window.Microseconds()
	st.Window = r.Window
	st.Remaining = max(r.Limit-c.w.used(us, win), 0)
	st.Reset = micros(c.w.reset(us, win))
	c.until = (c.w.b + 2) * win * 1000
}

// usage is what c counts at now and how long until it resets. A sliding
// window is read on a copy: rolled into another window, a state is dated
// by when it is rolled, and a read must not change the next decision
// (usage.lua writes nothing either).
func (c *memCount) usage(loc *time.Location, now int64, r Rule) (int64, time.Duration) {
	us := now / 1000
	if r.algo() == algoFixed {
		c.roll(loc, now, r)
		return c.w.c, micros(max(c.end-us, 1))
	}
	win := r.Window.Microseconds()
	w := c.w
	w.roll(us, win)
	return w.used(us, win), micros(w.reset(us, win))
}
