package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// Time limits on the child process.
const (
	startTimeout = 10 * time.Second // until the gateway answers /readyz 200
	stopTimeout  = 10 * time.Second // from SIGTERM to SIGKILL
	pollEvery    = 20 * time.Millisecond
)

// gateway is a running l1gw child process.
type gateway struct {
	cmd     *exec.Cmd
	proxy   string // 127.0.0.1:port of the proxy listener
	admin   string // 127.0.0.1:port of the admin listener
	logs    *harness.LogTail
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // set before exited is closed
}

// startGateway runs `bin serve --config cfgPath` and returns once the
// gateway has named its ports and answers GET /readyz with 200. On error
// the process is stopped.
func startGateway(ctx context.Context, bin, cfgPath string) (*gateway, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("gateway log pipe: %w", err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = harness.GatewayEnv(os.Environ())
	cmd.Stderr = w // the child writes its log straight into the pipe
	// Own process group: a terminal's Ctrl-C reaches only the runner, which
	// stops the child in order. Pdeathsig kills it if the runner dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start %s (built with make build?): %w", bin, err)
	}
	g := &gateway{cmd: cmd, logs: newLogTail(), exited: make(chan struct{})}
	serving := make(chan string, 1)
	go g.logs.Read(r, servingLine, serving)
	go func() {
		g.waitErr = cmd.Wait()
		close(g.exited)
	}()
	if err := g.waitServing(ctx, serving); err != nil {
		return nil, errors.Join(err, g.stop())
	}
	return g, nil
}

// waitServing waits for the gateway's "serving" log line, then polls
// /readyz on its admin port until 200, all within startTimeout.
func (g *gateway) waitServing(ctx context.Context, serving <-chan string) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	select {
	case addrs := <-serving:
		g.proxy, g.admin, _ = strings.Cut(addrs, " ")
	case <-g.exited:
		return fmt.Errorf("gateway exited before serving: %v; log:\n%s", g.waitErr, g.logs.Tail())
	case <-deadline.C:
		return fmt.Errorf("gateway did not log its ports within %s; log:\n%s", startTimeout, g.logs.Tail())
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if err := harness.CheckLoopback(g.proxy); err != nil {
		return err
	}
	if err := harness.CheckLoopback(g.admin); err != nil {
		return err
	}
	return g.pollReady(ctx, deadline.C)
}

// pollReady polls GET /readyz until 200, the deadline, the process's exit
// or ctx's end, whichever comes first.
func (g *gateway) pollReady(ctx context.Context, deadline <-chan time.Time) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	url := "http://" + g.admin + "/readyz"
	var last error
	for range int(startTimeout/pollEvery) + 1 {
		if last = getOK(client, url); last == nil {
			return nil
		}
		select {
		case <-tick.C:
		case <-deadline:
			return fmt.Errorf("gateway not ready within %s: %w", startTimeout, last)
		case <-g.exited:
			return fmt.Errorf("gateway exited while starting: %v; log:\n%s", g.waitErr, g.logs.Tail())
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return fmt.Errorf("gateway not ready after polling %s: %w", url, last)
}

// getOK is nil when GET url answers 200.
func getOK(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// stop sends SIGTERM and waits stopTimeout for the exit, then SIGKILLs. It
// returns an error when the gateway had already exited, did not exit
// cleanly, or had to be killed.
func (g *gateway) stop() error {
	select {
	case <-g.exited:
		return fmt.Errorf("gateway exited before it was stopped: %v; log:\n%s", g.waitErr, g.logs.Tail())
	default:
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal gateway: %w", err)
	}
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-g.exited:
		if g.waitErr != nil {
			return fmt.Errorf("gateway exit after SIGTERM: %w; log:\n%s", g.waitErr, g.logs.Tail())
		}
		return nil
	case <-t.C:
		_ = g.cmd.Process.Kill()
		<-g.exited
		return fmt.Errorf("gateway still running %s after SIGTERM; killed; log:\n%s", stopTimeout, g.logs.Tail())
	}
}

// pid is the child's process ID.
func (g *gateway) pid() int { return g.cmd.Process.Pid }
