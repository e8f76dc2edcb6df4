package tenants

import (
	"fmt"
	"strings"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// MaxWindow is the longest window of a sliding rule: a leap year.
const MaxWindow = 366 * 24 * time.Hour

// algorithm checks the fields of r that depend on its algorithm: a window
// for the sliding ones; a period, a time zone and an anchor for a fixed
// one. at names a field of the rule.
func (b *builder) algorithm(at func(string) string, r limiter.Rule) {
	switch r.Algorithm {
	case "", limiter.AlgoSlidingLog, limiter.AlgoSlidingWindow:
		switch {
		case r.Window < time.Millisecond:
			b.fail(at("window"), "got %s; want at least 1ms", r.Window)
		case r.Window > MaxWindow:
			// Past it the reset seconds the headers and /usage give
			// overflow; a longer budget is a quota (algorithm: fixed).
			b.fail(at("window"), "got %s; want at most %s (366 days)", r.Window, MaxWindow)
		}
		for _, f := range [...]struct {
			name string
			set  bool
		}{{"period", r.Period != ""}, {"timezone", r.Timezone != ""}, {"anchor", r.Anchor != 0}} {
			if f.set {
				b.fail(at(f.name), "only a fixed rule has one (algorithm: fixed)")
			}
		}
		return
	case limiter.AlgoFixed:
	default:
		b.fail(at("algorithm"), "got %q; want sliding_log, sliding_window or fixed", r.Algorithm)
		return
	}
	if r.Window != 0 {
		b.fail(at("window"), "a fixed rule counts per period; drop window")
	}
	switch r.Period {
	case limiter.PeriodDay, limiter.PeriodWeek, limiter.PeriodMonth:
	case "":
		b.fail(at("period"), "required for algorithm fixed: day, week or month")
	default:
		b.fail(at("period"), "got %q; want day, week or month", r.Period)
	}
	if r.Anchor != 0 && r.Period != limiter.PeriodMonth {
		b.fail(at("anchor"), "only a monthly period has an anchor day")
	} else if r.Anchor < 0 || r.Anchor > 31 {
		b.fail(at("anchor"), "got %d; want a day of the month, 1 to 31", r.Anchor)
	}
	if err := b.zone(r.Timezone); err != nil {
		b.fail(at("timezone"), "%v", err)
	}
}

// zone checks an IANA time zone name, once per name.
func (b *builder) zone(name string) error {
	if name == "" {
		return nil
	}
	if b.zones == nil {
		b.zones = make(map[string]error)
	}
	if (name == "Local" || strings.EqualFold(name, "localtime")) && !b.stored {
		// Go's name for the process' own zone, and the zoneinfo link to
		// /etc/localtime Debian ships: each gateway's TZ would place the
		// periods.
		return fmt.Errorf("got %q; want an IANA zone name such as Europe/Berlin, the same on every gateway", name)
	}
	err, seen := b.zones[name]
	if !seen {
		_, err = time.LoadLocation(name)
		b.zones[name] = err
	}
	return err
}
