package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// Time limits on child processes.
const (
	startTimeout = 10 * time.Second // until a child is ready
	stopTimeout  = 5 * time.Second  // from SIGTERM to SIGKILL
)

// child is a running child process: a forwarder, a gateway or a
// redis-server. Its stdout and stderr go into one pipe the runner drains.
type child struct {
	name    string
	cmd     *exec.Cmd
	out     *harness.LogTail
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // set before exited is closed
	metrics string        // the system's /metrics URL (a gateway's or a forwarder's); empty for none
}

// startChild starts cmd on cpu (-1: anywhere). match sees every output
// line until it first returns true; the value it returns then is sent on
// the returned channel. The child gets its own process group (a terminal's
// Ctrl-C reaches only the runner, which stops children in order) and
// SIGKILL when the runner dies.
func startChild(name string, cmd *exec.Cmd, cpu int, match func(string) (string, bool)) (*child, <-chan string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("%s output pipe: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Env = harness.GatewayEnv(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = startOn(cmd, cpu)
	w.Close()
	if err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("start %s (%s): %w", name, cmd.Path, err)
	}
	c := &child{name: name, cmd: cmd, out: harness.NewLogTail(warnKey, maxWarnKinds), exited: make(chan struct{})}
	found := make(chan string, 1)
	go c.out.Read(r, match, found)
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, found, nil
}

// await waits for the value match found, the child's exit, startTimeout
// or ctx's end, whichever comes first.
func (c *child) await(ctx context.Context, found <-chan string) (string, error) {
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case v := <-found:
		return v, nil
	case <-c.exited:
		return "", fmt.Errorf("%s exited while starting: %v; output:\n%s", c.name, c.waitErr, c.out.Tail())
	case <-t.C:
		return "", fmt.Errorf("%s not ready within %s; output:\n%s", c.name, startTimeout, c.out.Tail())
	case <-ctx.Done():
		return "", fmt.Errorf("%s: %w", c.name, context.Cause(ctx))
	}
}

// pid is the child's process ID.
func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM and waits stopTimeout for the exit, then SIGKILLs. It
// returns an error when the child had already exited, did not exit
// cleanly, or had to be killed.
func (c *child) stop() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s exited before it was stopped: %v; output:\n%s", c.name, c.waitErr, c.out.Tail())
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", c.name, err)
	}
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-c.exited:
		if c.waitErr != nil {
			return fmt.Errorf("%s exit after SIGTERM: %w; output:\n%s", c.name, c.waitErr, c.out.Tail())
		}
		return nil
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s still running %s after SIGTERM; killed; output:\n%s", c.name, stopTimeout, c.out.Tail())
	}
}

// maxWarnKinds bounds the distinct warnings counted per child.
const maxWarnKinds = 10

// warnLine is the part of a gateway JSON log line warnKey reads.
type warnLine struct {
	Level  string `json:"level"`
	Msg    string `json:"msg"`
	Reason string `json:"reason"`
	Err    string `json:"err"`
	// AfterErr is the error that opened a breaker, on a line that
	// degraded because the breaker is open (and has no err of its own).
	AfterErr string `json:"after_err"`
}

// warnKey is "LEVEL msg (reason: err)" for a WARN or ERROR JSON log line,
// or "LEVEL msg (reason, after: after_err)" for one with no err but the
// error that opened a breaker.
func warnKey(line string) (string, bool) {
	if !strings.Contains(line, `"WARN"`) && !strings.Contains(line, `"ERROR"`) {
		return "", false
	}
	var w warnLine
	if json.Unmarshal([]byte(line), &w) != nil || (w.Level != "WARN" && w.Level != "ERROR") {
		return "", false
	}
	k := w.Level + " " + w.Msg
	switch {
	case w.Err == "" && w.AfterErr != "":
		k += " (" + w.Reason + ", after: " + w.AfterErr + ")"
	case w.Reason != "" || w.Err != "":
		k += " (" + w.Reason + ": " + w.Err + ")"
	}
	return k, true
}
