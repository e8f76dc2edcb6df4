// Command stack runs a local, production-shaped l1gw stack on loopback
// until SIGINT or SIGTERM (`make stack`, `make stack-down`): a Redis
// primary, 2 replicas and 3 sentinels (internal/redistest, as the tests
// start them), the demo upstream (`l1gw demo-upstream`) and two gateways
// in Sentinel mode serving 1 000 tenants with keys stack-key-0000 …
// stack-key-0999, tenant "abuser" (a small plan) and tenant "demo".
//
// It writes what runs where to DIR/state.json and DIR/pid, and the bulk
// keys to DIR/keys.txt (the k6 scripts' KEYS file), and prints how to
// kill the primary by hand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(cli(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// cli parses the flags and runs the stack until ctx ends.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.bin, "bin", harness.DefaultBin, "the l1gw binary (make build)")
	fs.StringVar(&o.dir, "dir", ".stack", "the state directory: state.json, pid, keys.txt, gateway configs")
	fs.StringVar(&o.proxies[0], "proxy1", "127.0.0.1:18080", "gateway 1's proxy listener")
	fs.StringVar(&o.proxies[1], "proxy2", "127.0.0.1:18082", "gateway 2's proxy listener")
	fs.StringVar(&o.admins[0], "admin1", "127.0.0.1:19090", "gateway 1's admin listener")
	fs.StringVar(&o.admins[1], "admin2", "127.0.0.1:19092", "gateway 2's admin listener")
	fs.StringVar(&o.upstream, "upstream", "127.0.0.1:18081", "the demo upstream's listener")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := run(ctx, o, stdout); err != nil {
		fmt.Fprintln(stderr, "stack:", err)
		return 1
	}
	return 0
}

// run starts the stack, writes the state files, prints the summary, waits
// for ctx's end and stops everything, last started first.
func run(ctx context.Context, o options, stdout io.Writer) error {
	var err error
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	t := harness.NewT(ctx, "stack", stdout)
	defer t.Cleanups()
	var st *State
	t.Go(func() { st = start(ctx, t, o) }) // t.Fatalf ends this goroutine only
	if st == nil || t.Failed() {
		return fmt.Errorf("start: %s", strings.Join(t.Errors(), "; "))
	}
	st.Pid = os.Getpid()
	statePath, pidPath := filepath.Join(o.dir, "state.json"), filepath.Join(o.dir, "pid")
	if err := writeJSON(statePath, st); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(st.Pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	defer os.Remove(pidPath)
	defer os.Remove(statePath)
	printSummary(stdout, st, statePath)
	<-ctx.Done()
	fmt.Fprintln(stdout, "stack: stopping")
	t.Cleanups()
	if errs := t.Errors(); len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}
