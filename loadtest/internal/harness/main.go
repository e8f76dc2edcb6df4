package harness

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
)

// Report is what a runner prints and writes.
type Report interface {
	// Markdown is the report as printed.
	Markdown() string
	// Write writes md and the report's JSON into dir.
	Write(dir, md string) error
}

// Verdict is a Report that can fail the run: Main prints and writes it,
// then exits 1 when Err is not nil.
type Verdict interface {
	Err() error
}

// Runner is one load runner's parts for Main.
type Runner[O any] struct {
	// Name prefixes every message.
	Name string
	// Parse reads the flags; flag.ErrHelp is no error to print.
	Parse func(args []string, stderr io.Writer) (O, error)
	// Out is the directory the report is written to; "" writes nothing.
	Out func(O) string
	// Run measures, until done or ctx ends.
	Run func(ctx context.Context, o O, stderr io.Writer) (Report, error)
}

// Main is a runner's main with its inputs and outputs explicit: the flags,
// a run cancelled by SIGINT or SIGTERM, the report on stdout and in its
// directory. It returns the exit code: 2 for bad flags, 1 for a failure.
func Main[O any](r Runner[O], args []string, stdout, stderr io.Writer) int {
	opts, err := r.Parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "%s: %v\n", r.Name, err)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := r.Run(ctx, opts, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", r.Name, err)
		return 1
	}
	md := rep.Markdown()
	fmt.Fprint(stdout, md)
	if dir := r.Out(opts); dir != "" {
		if err := rep.Write(dir, md); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", r.Name, err)
			return 1
		}
		fmt.Fprintf(stderr, "%s: wrote %s\n", r.Name, dir)
	}
	if v, ok := rep.(Verdict); ok {
		if err := v.Err(); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", r.Name, err)
			return 1
		}
	}
	return 0
}
