package harness

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// ProbeCommand is the hidden subcommand of a runner that runs Probe in a
// process of its own (ProbeMain): a runner's main, or its tests'
// TestMain, hands it over before anything else.
//
// In the runner's own process the probe's readings would count the
// runner's scheduling too: a reply that lands while every P of a busy Go
// process runs other goroutines waits for one (the chaos runner runs
// scenarios and their load generators side by side). bench-compare has
// always run it as a child for that reason.
const ProbeCommand = "redisprobe"

// ProbeMain runs `redisprobe -addr ADDR`: it prints "probing" once
// connected and, when stopped by SIGTERM or SIGINT, "probed " and the
// result as JSON. It returns the exit code.
func ProbeMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(ProbeCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "redis-server 127.0.0.1:port")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	res, err := Probe(ctx, *addr, func() { fmt.Fprintln(stdout, "probing") })
	if err != nil {
		fmt.Fprintln(stderr, "redisprobe:", err)
		return 1
	}
	b, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "probed %s\n", b)
	return 0
}

// ProbeReady matches ProbeMain's "probing" line (for LogTail.Read).
func ProbeReady(line string) (string, bool) { return "", line == "probing" }

// ParseProbed reads ProbeMain's result from its output.
func ParseProbed(out string) (ProbeResult, error) {
	var res ProbeResult
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "probed "); ok {
			if err := json.Unmarshal([]byte(v), &res); err != nil {
				return res, fmt.Errorf("redis probe result %q: %w", v, err)
			}
			return res, nil
		}
	}
	return res, fmt.Errorf("redis probe printed no result; output:\n%s", out)
}

// ProbeProcess is a running `redisprobe` child.
type ProbeProcess struct {
	cmd     *exec.Cmd
	out     *LogTail
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // set before exited is closed
}

// probeStartTimeout bounds the wait for a probe child to connect.
const probeStartTimeout = 10 * time.Second

// StartProbeProcess runs `self redisprobe -addr addr` (self: the runner's
// own binary, or its test binary) and returns once it is connected. The
// child gets SIGKILL if the runner dies, or if the OS thread that started
// it ends (Pdeathsig is per thread: a goroutine that ends locked to its
// thread must never start one; see go.dev/issue/27505).
func StartProbeProcess(ctx context.Context, self, addr string) (*ProbeProcess, error) {
	cmd := exec.Command(self, ProbeCommand, "-addr", addr)
	r, err := startPiped(cmd, true)
	if err != nil {
		return nil, fmt.Errorf("redis probe (%s): %w", self, err)
	}
	p := &ProbeProcess{cmd: cmd, out: NewLogTail(func(string) (string, bool) { return "", false }, 0), exited: make(chan struct{})}
	ready := make(chan string, 1)
	go p.out.Read(r, ProbeReady, ready)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t := time.NewTimer(probeStartTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("redis probe of %s exited while starting: %v; output:\n%s", addr, p.waitErr, p.out.Tail())
	case <-t.C:
		err = fmt.Errorf("redis probe of %s not connected within %s; output:\n%s", addr, probeStartTimeout, p.out.Tail())
	case <-ctx.Done():
		err = fmt.Errorf("redis probe of %s: %w", addr, context.Cause(ctx))
	}
	_ = cmd.Process.Kill()
	<-p.exited
	return nil, err
}

// Finish stops the probe (SIGTERM; SIGKILL after 5 s) and returns what it
// saw.
func (p *ProbeProcess) Finish() (ProbeResult, error) {
	select {
	case <-p.exited:
		return ProbeResult{}, fmt.Errorf("redis probe exited before it was stopped: %v; output:\n%s", p.waitErr, p.out.Tail())
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return ProbeResult{}, fmt.Errorf("signal redis probe: %w", err)
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return ProbeResult{}, fmt.Errorf("redis probe still running 5s after SIGTERM; killed; output:\n%s", p.out.Tail())
	}
	if p.waitErr != nil {
		return ProbeResult{}, fmt.Errorf("redis probe exit: %w; output:\n%s", p.waitErr, p.out.Tail())
	}
	<-p.out.done // the child, the pipe's only writer, is gone: EOF is near
	return ParseProbed(p.out.Tail())
}

// startPiped starts cmd with its stderr, and its stdout too when both, in
// a pipe whose read end it returns. The child gets its own process group
// (a terminal's Ctrl-C reaches only the runner, which stops it in order)
// and SIGKILL if the runner dies.
func startPiped(cmd *exec.Cmd, both bool) (io.ReadCloser, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("output pipe: %w", err)
	}
	cmd.Stderr = w
	if both {
		cmd.Stdout = w
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start: %w", err)
	}
	return r, nil
}
