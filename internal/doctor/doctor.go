// Package doctor checks an operator's Redis against what l1gw needs: the
// topology (ROLE, Sentinel quorum, replica links), the settings the README
// recommends, the limiter's scripts, and the round trip against the
// decision budget. Each finding is one line with its fix.
package doctor

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// Severity is how much a finding matters.
type Severity int

// The severities, mildest first.
const (
	OK Severity = iota
	Warn
	Error
)

// String is the severity as printed: ok, warn or error.
func (s Severity) String() string {
	return [...]string{"ok", "warn", "error"}[s]
}

// Finding is one check's outcome: what was found and, when it is not ok,
// how to fix it.
type Finding struct {
	Severity Severity
	What     string
	Fix      string
}

// Report is every finding of one run, in the order checked.
type Report struct {
	Findings []Finding
}

// Count is how many findings have severity s.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Write prints one line per finding, then a summary line.
func (r *Report) Write(w io.Writer) {
	for _, f := range r.Findings {
		line := fmt.Sprintf("%-6s %s", f.Severity, f.What)
		if f.Fix != "" {
			line += ". Fix: " + f.Fix
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "%d ok, %d warning(s), %d error(s)\n", r.Count(OK), r.Count(Warn), r.Count(Error))
}

func (r *Report) add(s Severity, fix, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Severity: s, What: fmt.Sprintf(format, args...), Fix: fix})
}

// Options are what Run checks against.
type Options struct {
	// Redis is the config's redis section (the mode, the sentinels' master
	// name, local replicas).
	Redis limiter.RedisOptions
	// Budget is ratelimit.budget: a P99 round trip over half of it is a
	// warning, over it an error.
	Budget time.Duration
	// Pings is how many PINGs measure the round trip. Default 200.
	Pings int
}

// Run checks the Redis that c reaches and returns what it found. It never
// writes a key; it loads the limiter's scripts.
func Run(ctx context.Context, c *limiter.Clients, o Options) *Report {
	if o.Pings <= 0 {
		o.Pings = 200
	}
	d := &doctor{c: c, o: o, r: &Report{}}
	shards := d.shards(ctx)
	if err := c.Primary.Ping(ctx).Err(); err != nil {
		d.r.add(Error, "check that the primary is up and reachable from here, and redis.username/password",
			"the primary does not answer PING: %v", err)
		return d.r
	}
	for _, s := range shards {
		d.checkShard(ctx, s)
	}
	d.checkScripts(ctx)
	d.checkLatency(ctx)
	return d.r
}

// doctor is one run.
type doctor struct {
	c *limiter.Clients
	o Options
	r *Report
}

// shard is a primary and the replicas that should follow it.
type shard struct {
	primary  string
	replicas []string
}

func (d *doctor) checkScripts(ctx context.Context) {
	if err := d.c.LoadScripts(ctx); err != nil {
		d.r.add(Error, "allow redis.username the scripting commands (ACL +@scripting), and check the primary answers",
			"scripts do not load on the primary: %v", err)
		return
	}
	where := "the primary"
	if d.o.Redis.Mode == limiter.ModeCluster {
		where = "every primary"
	}
	d.r.add(OK, "", "scripts: decide, usage, peek and record load on %s", where)
}
