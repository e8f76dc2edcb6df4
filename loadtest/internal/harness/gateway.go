package harness

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
)

// Time limits on the child process.
const (
	startTimeout = 10 * time.Second // until the gateway answers /readyz 200
	stopTimeout  = 10 * time.Second // from SIGTERM to SIGKILL
	pollEvery    = 20 * time.Millisecond
)

// Gateway is a running l1gw child process.
type Gateway struct {
	// Proxy is the 127.0.0.1:port of the proxy listener.
	Proxy string
	// Admin is the 127.0.0.1:port of the admin listener.
	Admin string
	// Logs is the tail of its JSON log and its warnings by message.
	Logs *LogTail

	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // set before exited is closed
}

// StartGateway runs `bin serve --config cfgPath` and returns once the
// gateway has named its ports and answers GET /readyz with 200. On error
// the process is stopped.
func StartGateway(ctx context.Context, bin, cfgPath string) (*Gateway, error) {
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = GatewayEnv(os.Environ())
	r, err := startPiped(cmd, false) // the gateway logs to stderr
	if err != nil {
		return nil, fmt.Errorf("gateway %s (built with make build?): %w", bin, err)
	}
	g := &Gateway{cmd: cmd, Logs: newLogTail(), exited: make(chan struct{})}
	serving := make(chan string, 1)
	go g.Logs.Read(r, servingLine, serving)
	go func() {
		g.waitErr = cmd.Wait()
		close(g.exited)
	}()
	if err := g.waitServing(ctx, serving); err != nil {
		return nil, errors.Join(err, g.Stop())
	}
	return g, nil
}

// waitServing waits for the gateway's "serving" log line, then polls
// /readyz on its admin port until 200, all within startTimeout.
func (g *Gateway) waitServing(ctx context.Context, serving <-chan string) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	select {
	case addrs := <-serving:
		g.Proxy, g.Admin, _ = strings.Cut(addrs, " ")
	case <-g.exited:
		return fmt.Errorf("gateway exited before serving: %v; log:\n%s", g.waitErr, g.Logs.Tail())
	case <-deadline.C:
		return fmt.Errorf("gateway did not log its ports within %s; log:\n%s", startTimeout, g.Logs.Tail())
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if err := CheckLoopback(g.Proxy); err != nil {
		return err
	}
	if err := CheckLoopback(g.Admin); err != nil {
		return err
	}
	return g.pollReady(ctx, deadline.C)
}

// pollReady polls GET /readyz until 200, the deadline, the process's exit
// or ctx's end, whichever comes first.
func (g *Gateway) pollReady(ctx context.Context, deadline <-chan time.Time) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	url := "http://" + g.Admin + "/readyz"
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
			return fmt.Errorf("gateway exited while starting: %v; log:\n%s", g.waitErr, g.Logs.Tail())
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

// Stop sends SIGTERM and waits stopTimeout for the exit, then SIGKILLs. It
// returns an error when the gateway had already exited, did not exit
// cleanly, or had to be killed.
func (g *Gateway) Stop() error {
	select {
	case <-g.exited:
		return fmt.Errorf("gateway exited before it was stopped: %v; log:\n%s", g.waitErr, g.Logs.Tail())
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
			return fmt.Errorf("gateway exit after SIGTERM: %w; log:\n%s", g.waitErr, g.Logs.Tail())
		}
		return nil
	case <-t.C:
		_ = g.cmd.Process.Kill()
		<-g.exited
		return fmt.Errorf("gateway still running %s after SIGTERM; killed; log:\n%s", stopTimeout, g.Logs.Tail())
	}
}

// Pid is the child's process ID.
func (g *Gateway) Pid() int { return g.cmd.Process.Pid }
