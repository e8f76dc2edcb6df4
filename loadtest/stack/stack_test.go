package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// TestStack runs the stack as `make stack` does, on free ports: both
// gateways answer 200 for the demo key and 401 for no key, the sentinels
// agree on the primary, and once stopped no process of it is left.
func TestStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := harness.BuildGateway(ctx, t.TempDir(), "../..")
	if err != nil {
		t.Fatal(err)
	}
	o := options{bin: bin, dir: t.TempDir(), upstream: "127.0.0.1:0",
		proxies: [2]string{"127.0.0.1:0", "127.0.0.1:0"}, admins: [2]string{"127.0.0.1:0", "127.0.0.1:0"}}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var out testkit.SyncBuffer
	errc := make(chan error, 1)
	go func() { errc <- run(runCtx, o, &out) }()
	st := waitState(t, filepath.Join(o.dir, "state.json"), errc, &out)

	for _, g := range st.Gateways {
		if code := get(t, "http://"+g.Proxy+"/hello", DemoKey); code != http.StatusOK {
			t.Errorf("gateway %s, demo key: %d, want 200", g.Proxy, code)
		}
		if code := get(t, "http://"+g.Proxy+"/hello", "not-a-key"); code != http.StatusUnauthorized {
			t.Errorf("gateway %s, unknown key: %d, want 401 (tenants.unknown: reject)", g.Proxy, code)
		}
	}
	primaries, err := sentinelPrimaries(ctx, st.Sentinels)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range primaries {
		if p != st.Primary.Addr {
			t.Errorf("sentinel %d names %s as the primary, want %s", i, p, st.Primary.Addr)
		}
	}
	if len(primaries) != 3 || len(st.Replicas) != 2 || len(st.Gateways) != 2 {
		t.Errorf("%d sentinels, %d replicas, %d gateways; want 3, 2, 2", len(primaries), len(st.Replicas), len(st.Gateways))
	}
	// l1gw doctor, against the stack as a gateway's config sees it, finds
	// it clean: the production settings are applied.
	doctor := exec.CommandContext(ctx, bin, "doctor", "--config", filepath.Join(o.dir, "gateway-0.yaml"))
	if report, err := doctor.CombinedOutput(); err != nil || !strings.Contains(string(report), " 0 warning(s), 0 error(s)") {
		t.Errorf("l1gw doctor against the stack: %v; want it clean:\n%s", err, report)
	}
	if want := fmt.Sprintf("kill -STOP %d", st.Primary.Pid); !strings.Contains(out.String(), want) {
		t.Errorf("summary does not say %q:\n%s", want, out.String())
	}

	stop()
	if err := <-errc; err != nil {
		t.Errorf("run after stop: %v", err)
	}
	for _, pid := range st.pids() {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still there after the stack stopped (kill -0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(filepath.Join(o.dir, "pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left behind: %v", err)
	}
}

// waitState waits for the state file and decodes it.
func waitState(t *testing.T, path string, errc <-chan error, out *testkit.SyncBuffer) *State {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			var st State
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatalf("state file: %v", err)
			}
			return &st
		}
		select {
		case err := <-errc:
			t.Fatalf("stack ended before it was up: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("no state file within 60 s:\n%s", out.String())
	return nil
}

// get sends GET url with an API key and returns the status code.
func get(t *testing.T, url, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-API-Key", key)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// pids is every process of the stack but the command itself.
func (st *State) pids() []int {
	pids := []int{st.Primary.Pid, st.Upstream.Pid}
	for _, p := range append(st.Replicas, st.Sentinels...) {
		pids = append(pids, p.Pid)
	}
	for _, g := range st.Gateways {
		pids = append(pids, g.Pid)
	}
	return pids
}
