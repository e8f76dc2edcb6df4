package doctor

import (
	"context"
	"slices"
	"time"
)

// checkLatency times o.Pings PINGs to the primary, one after another on
// one connection, against ratelimit.budget: a P99 over half the budget is
// a warning (little left for the script and the gateway's own queue),
// over the budget an error (decisions would degrade). Run has pinged
// once already, so no PING timed here waits on a dial.
func (d *doctor) checkLatency(ctx context.Context) {
	rtts := make([]time.Duration, 0, d.o.Pings)
	for range d.o.Pings {
		start := time.Now()
		if err := d.c.Primary.Ping(ctx).Err(); err != nil {
			d.r.add(Error, "check the network to the primary", "PING the primary (%d answered): %v", len(rtts), err)
			return
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	p50, p99 := rtts[len(rtts)/2], rtts[(len(rtts)*99+99)/100-1]
	b := d.o.Budget
	const fix = "run the gateway nearer the primary (same zone), or raise ratelimit.budget"
	switch {
	case p99 > b:
		d.r.add(Error, fix, "round trip to the primary: p50 %s, p99 %s over %d PINGs, over ratelimit.budget %s: decisions would degrade",
			round(p50), round(p99), len(rtts), b)
	case p99 > b/2:
		d.r.add(Warn, fix, "round trip to the primary: p50 %s, p99 %s over %d PINGs, over half of ratelimit.budget %s",
			round(p50), round(p99), len(rtts), b)
	default:
		d.r.add(OK, "", "round trip to the primary: p50 %s, p99 %s over %d PINGs (ratelimit.budget %s)",
			round(p50), round(p99), len(rtts), b)
	}
}

// round keeps a duration readable: microseconds below a millisecond,
// else a tenth of a millisecond.
func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Microsecond)
}
