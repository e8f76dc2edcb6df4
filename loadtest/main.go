// Command loadtest is l1gw's load-test runner: it starts its own upstream
// in-process and the gateway binary as a child process on loopback ports,
// attacks them at a fixed rate for a fixed duration with vegeta, and reports
// latency, status codes and the gateway's CPU and memory per scenario.
//
//	make loadtest LOADTEST_ARGS='[-rate 1000] [-duration 10s] [-scenario all] [-bin bin/l1gw] [-out loadtest/out/]'
//
// (make loadtest builds this command into bin/loadtest and runs it from the
// repository's root; -bin and -out are relative to the working directory.)
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
	"strings"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// Bounds on the flags: every run stops itself.
const (
	maxDuration = 120 * time.Second
	maxHeld     = 5000
	maxPressure = 15000
	// maxRounds bounds idle-slowloris's rounds (two attacks each).
	maxRounds = 10
)

// options are the command's flags.
type options struct {
	rate      int
	duration  time.Duration
	scenarios []string
	bin       string
	out       string
	held      int // connections the held-bodies scenario holds
	idle      int // idle connections of idle-slowloris
	slowloris int // slowloris connections of idle-slowloris
	rounds    int // rounds of idle-slowloris
}

func main() {
	if spec := os.Getenv(pressureEnv); spec != "" {
		os.Exit(pressureChild(spec))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its inputs and outputs explicit; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return harness.Main(harness.Runner[options]{Name: "loadtest", Parse: parseFlags,
		Out: func(o options) string { return o.out },
		Run: func(ctx context.Context, o options, progress io.Writer) (harness.Report, error) {
			return runAll(ctx, o, progress)
		}}, args, stdout, stderr)
}

// parseFlags reads and checks the flags.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.rate, "rate", 1000, "requests per second, every scenario")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each scenario's attack (at most 2m)")
	list := fs.String("scenario", "all", "comma-separated: "+strings.Join(scenarioNames(), ", ")+", or all")
	fs.StringVar(&o.bin, "bin", harness.DefaultBin, "the gateway binary (make build)")
	fs.StringVar(&o.out, "out", "loadtest/out/", `directory for results.json and results.md; "" writes nothing`)
	fs.IntVar(&o.held, "held", 1000, "held-bodies: connections declaring a 10 MiB body each (at most 5000)")
	fs.IntVar(&o.idle, "idle", 10000, "idle-slowloris: idle connections (at most 15000, with -slowloris)")
	fs.IntVar(&o.slowloris, "slowloris", 500, "idle-slowloris: slowloris connections")
	fs.IntVar(&o.rounds, "rounds", 3, "idle-slowloris: rounds, each an attack alone then one beside the held connections (at most 10)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.rate <= 0 || o.rate > harness.MaxRate {
		return o, fmt.Errorf("-rate: got %d; want 1 to %d", o.rate, harness.MaxRate)
	}
	if o.duration <= 0 || o.duration > maxDuration {
		return o, fmt.Errorf("-duration: got %s; want > 0 and at most %s", o.duration, maxDuration)
	}
	if o.held < 1 || o.held > maxHeld {
		return o, fmt.Errorf("-held: got %d; want 1 to %d", o.held, maxHeld)
	}
	if o.idle < 0 || o.slowloris < 0 || o.idle+o.slowloris > maxPressure {
		return o, fmt.Errorf("-idle %d -slowloris %d: want at most %d in all (each is a file descriptor here and in the gateway)", o.idle, o.slowloris, maxPressure)
	}
	if o.rounds < 1 || o.rounds > maxRounds {
		return o, fmt.Errorf("-rounds: got %d; want 1 to %d", o.rounds, maxRounds)
	}
	var err error
	if o.scenarios, err = selectScenarios(*list); err != nil {
		return o, fmt.Errorf("-scenario: %w", err)
	}
	return o, nil
}

// selectScenarios turns the -scenario list into names in run order
// (baseline first, so the gateway scenarios can be compared with it).
func selectScenarios(list string) ([]string, error) {
	want := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "all" {
			return scenarioNames(), nil
		}
		if _, ok := findScenario(name, 1); !ok {
			return nil, fmt.Errorf("unknown scenario %q; want %s or all", name, strings.Join(scenarioNames(), ", "))
		}
		want[name] = true
	}
	var names []string
	for _, name := range scenarioNames() {
		if want[name] {
			names = append(names, name)
		}
	}
	return names, nil
}

// runAll starts the upstream, runs every selected scenario in order and
// returns the report. progress gets one line per scenario.
func runAll(ctx context.Context, o options, progress io.Writer) (*Report, error) {
	up, err := harness.StartUpstream(harness.UpstreamBody)
	if err != nil {
		return nil, err
	}
	defer up.Stop()
	rep := &Report{Machine: harness.DescribeMachine(ctx, o.bin), Command: reproduce(o)}
	for _, name := range o.scenarios {
		sc, _ := findScenario(name, o.rate)
		fmt.Fprintf(progress, "loadtest: %s: %d req/s for %s\n", name, o.rate, o.duration)
		res, err := runScenario(ctx, sc, o, up.Addr)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", name, err)
		}
		rep.Results = append(rep.Results, res)
	}
	rep.compareWithBaseline()
	return rep, nil
}

// reproduce is the command line that repeats this run.
func reproduce(o options) string {
	return harness.MakeCommand("loadtest", "LOADTEST_ARGS", o.bin,
		fmt.Sprintf("-rate %d -duration %s -scenario %s -held %d -idle %d -slowloris %d -rounds %d",
			o.rate, o.duration, strings.Join(o.scenarios, ","), o.held, o.idle, o.slowloris, o.rounds))
}
