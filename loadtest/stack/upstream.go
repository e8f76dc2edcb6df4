package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// upstream is a running `l1gw demo-upstream`.
type upstream struct {
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startUpstream runs `bin demo-upstream --listen addr` (port 0: a free
// one) and returns once it answers GET /healthz.
func startUpstream(ctx context.Context, bin, addr string) (*upstream, error) {
	addr, err := freeAddr(addr)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "demo-upstream", "--listen", addr)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("demo upstream: %w", err)
	}
	u := &upstream{addr: addr, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(u.exited)
	}()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	var last error
	for range 250 {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return u, nil
		}
		last = err
		select {
		case <-u.exited:
			return nil, fmt.Errorf("demo upstream on %s exited while starting", addr)
		case <-ctx.Done():
			u.stop()
			return nil, context.Cause(ctx)
		case <-time.After(20 * time.Millisecond):
		}
	}
	u.stop()
	return nil, fmt.Errorf("demo upstream on %s not answering: %w", addr, last)
}

// stop sends SIGTERM, and SIGKILL after 5 s.
func (u *upstream) stop() {
	if err := u.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		_ = u.cmd.Process.Kill()
	}
	select {
	case <-u.exited:
	case <-time.After(5 * time.Second):
		_ = u.cmd.Process.Kill()
		<-u.exited
	}
}

// freeAddr returns addr, or with port 0 the same host with a port that
// was free a moment ago.
func freeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("upstream address %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
