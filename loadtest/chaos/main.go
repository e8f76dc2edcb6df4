// Command chaos is l1gw's chaos suite: for each scenario it starts real
// redis-server, redis-sentinel or Redis Cluster processes and the gateway
// binary on loopback ports, drives a constant load through the gateway
// while the scenario injects a Redis fault, and reports what came back:
// status codes, how many decisions were marked degraded against how many
// the gateway counted, latency per phase, recovery to ok, over-admission
// of a limited tenant, and goroutine, fd and connection growth.
//
//	make chaos CHAOS_ARGS='[-bin bin/l1gw] [-rate 300] [-scenario all] [-short] [-out loadtest/out/]'
//
// (make chaos builds this command into bin/chaos and runs it from the
// repository's root; -bin and -out are relative to the working directory.)
//
// It exits 1 when a scenario fails a check (see check). make chaos runs it
// at full length; TestChaos (build tag chaos, make test-chaos) runs the
// short form under go test. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// options are the command's flags.
type options struct {
	bin       string
	rate      int
	scenarios string
	short     bool
	out       string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == harness.ProbeCommand {
		os.Exit(harness.ProbeMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(harness.Main(harness.Runner[options]{Name: "chaos", Parse: parseFlags,
		Out: func(o options) string { return o.out },
		Run: func(ctx context.Context, o options, progress io.Writer) (harness.Report, error) {
			return runAll(ctx, o, progress)
		}}, os.Args[1:], os.Stdout, os.Stderr))
}

// parseFlags reads and checks the flags.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.bin, "bin", harness.DefaultBin, "the gateway binary (make build)")
	fs.IntVar(&o.rate, "rate", 300, "requests per second through every phase")
	fs.StringVar(&o.scenarios, "scenario", "all", "comma-separated scenario names, or all")
	fs.BoolVar(&o.short, "short", false, "the short form make test runs: 1 s phases, a 2 s outage")
	fs.StringVar(&o.out, "out", "loadtest/out/", `directory for chaos.json, chaos.md and chaos.html; "" writes nothing`)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.rate < 1 || o.rate > harness.MaxRate {
		return o, fmt.Errorf("-rate: got %d; want 1 to %d", o.rate, harness.MaxRate)
	}
	if _, err := selectScenarios(o.scenarios); err != nil {
		return o, fmt.Errorf("-scenario: %w", err)
	}
	if _, err := os.Stat(o.bin); err != nil {
		return o, fmt.Errorf("-bin: %w (make build builds it)", err)
	}
	return o, nil
}

// runAll runs the scenarios one after another and returns the report; its
// Err names those that failed a check.
func runAll(ctx context.Context, o options, progress io.Writer) (*ChaosReport, error) {
	scenarios, _ := selectScenarios(o.scenarios)
	s, err := newSuite(ctx, o.bin, timingFor(!o.short, o.rate), !o.short, reproduce(o), len(scenarios))
	if err != nil {
		return nil, err
	}
	for i, sc := range scenarios {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(progress, "chaos: %s\n", sc.name)
		errs := runScenarioT(ctx, sc.name, progress, func(t T) { s.run(t, i, sc) })
		s.failed(i, sc, errs)
	}
	rep := s.report()
	if err := context.Cause(ctx); err != nil {
		return rep, fmt.Errorf("stopped: %w", err)
	}
	return rep, nil
}

// reproduce is the command line that repeats the run.
func reproduce(o options) string {
	args := []string{fmt.Sprintf("-rate %d", o.rate)}
	if o.scenarios != "all" {
		args = append(args, "-scenario "+o.scenarios)
	}
	if o.short {
		args = append(args, "-short")
	}
	return harness.MakeCommand("chaos", "CHAOS_ARGS", o.bin, args...)
}
