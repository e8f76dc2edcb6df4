// Command benchcompare measures, side by side in one run and on pinned
// CPUs, the upstream alone, a bare fasthttp forwarder, the same forwarder
// with one naive Redis script call per request, and the l1gw binary in
// memory, exact and replica mode: closed-loop throughput and CPU per
// request, then open-loop latency at half of each system's throughput.
//
//	make bench-compare BENCH_COMPARE_ARGS='[-bin bin/l1gw] [-duration 5s] [-runs 3] [-systems all] [-conns 64,256] [-out loadtest/out/]'
//
// (make bench-compare builds this command into bin/benchcompare and runs
// it from the repository's root; -bin and -out are relative to the working
// directory.)
//
// It is a command of its own, in the loadtest module: the gateway never
// imports it. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// Bounds on the flags: every run stops itself.
const (
	maxDuration = time.Minute
	maxRuns     = 10
	maxConns    = 4096
	maxOpenRate = 100_000
	maxTenants  = 100_000
	// defaultLimitedLimit is the limited tenant's limit per hour.
	defaultLimitedLimit = 100
)

// options are the command's flags.
type options struct {
	bin      string
	duration time.Duration
	runs     int
	systems  []string
	conns    []int
	out      string
	// openRate, if > 0, is every system's open-loop rate, so that their
	// latencies compare at one load; 0 is half each one's own maximum.
	openRate int
	// tenants is how many tenants share the bench load (benchKeys).
	tenants int
	// limitedLimit is the limited tenant's limit (per 1h window); not a
	// flag, the smoke test lowers it so the limit is reached.
	limitedLimit int64
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == forwarderCommand {
		os.Exit(forwarderMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == harness.ProbeCommand {
		os.Exit(harness.ProbeMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its inputs and outputs explicit; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return harness.Main(harness.Runner[options]{Name: "benchcompare", Parse: parseFlags,
		Out: func(o options) string { return o.out },
		Run: func(ctx context.Context, o options, progress io.Writer) (harness.Report, error) {
			return runAll(ctx, o, progress)
		}}, args, stdout, stderr)
}

// parseFlags reads and checks the flags.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("benchcompare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{limitedLimit: defaultLimitedLimit, tenants: 1}
	fs.StringVar(&o.bin, "bin", harness.DefaultBin, "the gateway binary (make build)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measurement (at most 1m)")
	fs.IntVar(&o.runs, "runs", 3, "repeats of the whole comparison (at most 10)")
	systems := fs.String("systems", "all", "comma-separated: "+strings.Join(systemNames(), ", ")+", or all")
	conns := fs.String("conns", "64,256", "comma-separated closed-loop connection counts; the open loop runs at half the first one's rate")
	fs.StringVar(&o.out, "out", "loadtest/out/", `directory for bench-compare.md and .json; "" writes nothing`)
	fs.IntVar(&o.openRate, "open-rate", 0, "the open loop's rate for every system, req/s; 0: half of each system's own closed-loop rate")
	fs.IntVar(&o.tenants, "tenants", 1, "how many tenants, each with a key and a log of its own, share the unlimited load, request by request in turn")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.duration <= 0 || o.duration > maxDuration {
		return o, fmt.Errorf("-duration: got %s; want > 0 and at most %s", o.duration, maxDuration)
	}
	if o.openRate < 0 || o.openRate > maxOpenRate {
		return o, fmt.Errorf("-open-rate: got %d; want 0 to %d", o.openRate, maxOpenRate)
	}
	if o.tenants < 1 || o.tenants > maxTenants {
		return o, fmt.Errorf("-tenants: got %d; want 1 to %d", o.tenants, maxTenants)
	}
	if o.runs < 1 || o.runs > maxRuns {
		return o, fmt.Errorf("-runs: got %d; want 1 to %d", o.runs, maxRuns)
	}
	var err error
	if o.systems, err = selectSystems(*systems); err != nil {
		return o, fmt.Errorf("-systems: %w", err)
	}
	if o.conns, err = parseConns(*conns); err != nil {
		return o, fmt.Errorf("-conns: %w", err)
	}
	return o, nil
}

// selectSystems turns the -systems list into names in table order.
func selectSystems(list string) ([]string, error) {
	want := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "all" {
			return systemNames(), nil
		}
		if _, ok := findSystem(name); !ok {
			return nil, fmt.Errorf("unknown system %q; want %s or all", name, strings.Join(systemNames(), ", "))
		}
		want[name] = true
	}
	var names []string
	for _, name := range systemNames() {
		if want[name] {
			names = append(names, name)
		}
	}
	return names, nil
}

// parseConns reads "64,256": distinct connection counts in the given order.
func parseConns(list string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		if n < 1 || n > maxConns {
			return nil, fmt.Errorf("got %d; want 1 to %d", n, maxConns)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// reproduce is the command line that repeats this run.
func reproduce(o options) string {
	conns := make([]string, len(o.conns))
	for i, n := range o.conns {
		conns[i] = strconv.Itoa(n)
	}
	args := []string{fmt.Sprintf("-duration %s -runs %d -systems %s -conns %s",
		o.duration, o.runs, strings.Join(o.systems, ","), strings.Join(conns, ","))}
	if o.openRate > 0 {
		args = append(args, "-open-rate "+strconv.Itoa(o.openRate))
	}
	if o.tenants > 1 {
		args = append(args, "-tenants "+strconv.Itoa(o.tenants))
	}
	return harness.MakeCommand("bench-compare", "BENCH_COMPARE_ARGS", o.bin, args...)
}
