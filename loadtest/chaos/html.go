package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
	"github.com/l1gw/l1gw/loadtest/internal/timeline"
)

// timelineOf is a scenario's attack per second from the first mark to
// end (ss sorted by send time), with a fault window from each fault mark
// to the next mark (its heal, or the next fault), or to end; a mark that
// is both fault and heal (a blip) is a window of no length.
func timelineOf(name string, marks []phaseMark, ss []sample, end time.Time) timeline.Timeline {
	start := end
	if len(marks) > 0 {
		start = marks[0].at
	}
	if len(ss) > 0 && ss[0].at.Before(start) {
		start = ss[0].at
	}
	b := timeline.NewBuilder(start)
	b.End(end)
	for _, s := range ss {
		b.Add(s.at, s.latency, int(s.code), s.state == stateDegraded)
	}
	for i, m := range marks {
		if !m.fault {
			continue
		}
		to := end
		switch {
		case m.heal:
			to = m.at
		case i+1 < len(marks):
			to = marks[i+1].at
		}
		b.Fault(m.name, m.at, to)
	}
	return b.Timeline(name)
}

// page is the report's HTML page: a timeline per scenario that ran to
// the end.
func (r *ChaosReport) page() timeline.Page {
	m := r.Machine
	p := timeline.Page{Title: fmt.Sprintf("l1gw chaos suite (%s form)", r.Form), Lines: []string{
		fmt.Sprintf("%s · nproc %d · %s · %s · %s · loadavg %s (at start)", m.Date, m.NProc, m.CPU, m.Go, m.Gateway, m.LoadAvg),
		"Reproduce: " + r.Command,
		fmt.Sprintf("Load: %d req/s through every phase, 2/3 tenant %s, 1/3 tenant %s (limit %d per 1 s). Per second of send time; chaos.md has the phases and the checks.",
			r.Rate, bulkTenant, limitedTenant, r.Limit),
	}}
	for _, res := range r.Results {
		if res.Timeline != nil {
			p.Timelines = append(p.Timelines, *res.Timeline)
		}
	}
	return p
}

// Write saves chaos.json, chaos.md (the Markdown md) and chaos.html (the
// plots) in dir.
func (r *ChaosReport) Write(dir, md string) error {
	if err := harness.WriteReport(dir, "chaos", r, md); err != nil {
		return err
	}
	return r.page().WriteFile(filepath.Join(dir, "chaos.html"))
}
