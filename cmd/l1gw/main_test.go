package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/tenants"
)

// TestMain lets a test run this binary as the real l1gw process: with
// L1GWTEST_AS_MAIN=1 it runs main's logic on its arguments and exits.
func TestMain(m *testing.M) {
	if os.Getenv("L1GWTEST_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, nil, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`
plans: {p: {limits: [{name: r, limit: 1, window: 1s}]}}
tenant_list: [{id: t, plan: p, keys: [k]}]
upstreams: {u: {targets: ["http://127.0.0.1:1"]}}
routes: [{upstream: u}]
`), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`
server: {read_timeout: 5, listen: nowhere, typo: 1}
plans: {p: {limits: [{name: r, limit: -1, window: 1s}]}}
tenant_list: [{id: t, plan: q, keys: [k]}]
upstreams: {u: {targets: ["http://127.0.0.1:1"]}}
routes: [{upstream: v}]
`), 0o600)
	cases := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string
		wantErrOut []string
	}{
		{"version", []string{"version"}, 0, "l1gw dev", nil},
		{"check good config", []string{"check-config", "--config", good}, 0, "config ok: " + good, nil},
		{"check embedded demo", []string{"check-config"}, 0, "config ok: embedded demo config", nil},
		{"check bad config lists every problem", []string{"check-config", "--config", bad}, 1, "", []string{
			"6 problem(s)", "server.read_timeout", "server.listen", "server.typo: unknown key", "plans.p.limits[0].limit",
			`tenant_list[0].plan: unknown plan "q"`, `routes[0].upstream: unknown upstream "v"`, "(from " + bad + ")"}},
		{"a flag overrides and is named", []string{"check-config", "--config", good, "--set", "ratelimit.budget=fast"}, 1, "", []string{`ratelimit.budget: got "fast"; want a duration`, "(from --set ratelimit.budget=fast)"}},
		{"missing file", []string{"check-config", "--config", filepath.Join(dir, "nope.yaml")}, 1, "", []string{"nope.yaml"}},
		{"hash-key", []string{"hash-key", "s3cret"}, 0, tenants.HashKey("s3cret"), nil},
		{"unknown command", []string{"frobnicate"}, 2, "", []string{`unknown command "frobnicate"`}},
		{"stray argument", []string{"serve", "extra"}, 2, "", []string{`unexpected argument "extra"`}},
		{"serve refuses a bad config", []string{"--config", bad}, 1, "", []string{"invalid config", "server.typo"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(tc.args...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("l1gw %v: exit %d, stdout %q; want exit %d, stdout containing %q\nstderr: %s", tc.args, code, out, tc.wantCode, tc.wantOut, errOut)
			}
			for _, w := range tc.wantErrOut {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSIGTERMDrainsInFlightRequests runs l1gw as a real process, sends it
// SIGTERM while requests are in flight, and expects them answered and exit 0.
func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	arrived := make(chan struct{}, 3)
	upURL := testkit.Serve(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) != "/x" {
			return // the gateway's health check, which must not count as a request in flight
		}
		arrived <- struct{}{}
		time.Sleep(700 * time.Millisecond)
		ctx.SetBodyString("slow ok")
	})
	proxy, admin := freeAddr(t), freeAddr(t)

	cmd := exec.Command(os.Args[0], "serve",
		"--set", "server.listen="+proxy, "--set", "server.admin_listen="+admin,
		"--set", "upstreams.demo.targets="+upURL)
	cmd.Env = append(os.Environ(), "L1GWTEST_AS_MAIN=1")
	var logs testkit.SyncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitReady(t, admin, &logs)

	results := make(chan string, 3)
	for range 3 {
		go func() {
			req, resp := &fasthttp.Request{}, &fasthttp.Response{}
			req.SetRequestURI("http://" + proxy + "/x")
			req.Header.Set("X-API-Key", "demo-key")
			if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
				results <- err.Error()
				return
			}
			results <- fmt.Sprintf("%d %s", resp.StatusCode(), resp.Body())
		}()
	}
	for range 3 { // the requests are now waiting on the upstream
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("the 3 requests did not reach the upstream\n%s", logs.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := <-results; got != "200 slow ok" {
			t.Errorf("in-flight request: got %q; want 200 slow ok\n%s", got, logs.String())
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("l1gw exited with %v; want 0\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("l1gw did not exit within 10s of SIGTERM\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("logs lack the stop line:\n%s", logs.String())
	}
}

// serveFile runs l1gw serve --config file as a real process until the
// test ends, and waits until its admin listener says ready.
func serveFile(t *testing.T, file, admin string) (*exec.Cmd, *testkit.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--config", file)
	cmd.Env = append(os.Environ(), "L1GWTEST_AS_MAIN=1")
	logs := &testkit.SyncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	waitReady(t, admin, logs)
	return cmd, logs
}

func waitReady(t *testing.T, admin string, logs *testkit.SyncBuffer) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("l1gw's log:\n%s", logs.String())
		}
	})
	testkit.Eventually(t, 10*time.Second, func() error {
		if code, _, err := fasthttp.Get(nil, "http://"+admin+"/readyz"); err != nil || code != 200 {
			return fmt.Errorf("l1gw not ready (%d, %v)", code, err)
		}
		return nil
	})
}

// TestSIGHUPReloadsTheConfig runs l1gw as a real process on a config file,
// edits the file, and sends SIGHUP: the new tenant is served without a
// restart.
func TestSIGHUPReloadsTheConfig(t *testing.T) {
	upURL := testkit.Serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("up") })
	proxy, admin := freeAddr(t), freeAddr(t)
	file := filepath.Join(t.TempDir(), "l1gw.yaml")
	write := func(keys string) {
		t.Helper()
		cfg := fmt.Sprintf(`server: {listen: %q, admin_listen: %q, config_reload_interval: 0s}
plans: {free: {limits: [{name: per_second, limit: 100, window: 1s}]}}
tenant_list: [{id: demo, plan: free, keys: [%s]}]
upstreams: {demo: {targets: [%q], health: {path: ""}}}
routes: [{path_prefix: /, upstream: demo}]
`, proxy, admin, keys, upURL)
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("old-key")
	cmd, logs := serveFile(t, file, admin)
	status := func(key string) int {
		req, resp := &fasthttp.Request{}, &fasthttp.Response{}
		req.SetRequestURI("http://" + proxy + "/x")
		req.Header.Set("X-API-Key", key)
		if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
			return 0
		}
		return resp.StatusCode()
	}
	if got := status("new-key"); got != 401 {
		t.Fatalf("new-key before the reload: got %d; want 401", got)
	}
	write("new-key")
	if got := status("new-key"); got != 401 {
		t.Fatalf("new-key after the edit, before SIGHUP: got %d; want 401 (the file is not watched here)", got)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if got := status("new-key"); got != 200 {
			return fmt.Errorf("new-key after SIGHUP: got %d; want 200", got)
		}
		return nil
	})
	if got := status("old-key"); got != 401 {
		t.Errorf("old-key after SIGHUP: got %d; want 401 (revoked)", got)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("l1gw exited with %v; want 0\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"config reloaded","trigger":"signal"`) {
		t.Errorf("logs lack the reload line:\n%s", logs.String())
	}
}

// TestAdminCommand runs a real gateway and drives its admin API with
// `l1gw admin`: answers on stdout as JSON, refusals on stderr with exit 1,
// bad usage exit 2, the token only from the environment.
func TestAdminCommand(t *testing.T) {
	upURL := testkit.Serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("up") })
	proxy, admin := freeAddr(t), freeAddr(t)
	file := filepath.Join(t.TempDir(), "l1gw.yaml")
	cfg := fmt.Sprintf(`server: {listen: %q, admin_listen: %q, admin_token: s3cret}
plans: {free: {limits: [{name: per_minute, limit: 5, window: 1m}]}}
tenant_list: [{id: demo, plan: free, keys: [demo-key]}]
upstreams: {demo: {targets: [%q], health: {path: ""}}}
routes: [{path_prefix: /, upstream: demo}]
`, proxy, admin, upURL)
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	serveFile(t, file, admin)
	env := []string{"L1GW_SERVER__ADMIN_TOKEN=s3cret", "L1GW_SERVER__ADMIN_LISTEN=" + admin}
	adm := func(env []string, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(append([]string{"admin"}, args...), env, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	cases := []struct {
		name     string
		env      []string
		args     []string
		code     int
		out, err string
	}{
		{"usage", env, []string{"usage", "demo"}, 0, `"name": "per_minute"`, ""},
		{"simulate", env, []string{"simulate", "--key", "demo-key", "--path", "/x"}, 0, `"result": "allowed"`, ""},
		{"reload", env, []string{"reload"}, 0, `"result": "unchanged"`, ""},
		{"config redacted", env, []string{"config"}, 0, `"admin_token": "\u003credacted\u003e"`, ""},
		{"reset", env, []string{"reset", "demo"}, 0, "", ""},
		{"unknown tenant", env, []string{"usage", "nope"}, 1, "", "404 Not Found: no tenant has this id"},
		{"no token", []string{"L1GW_SERVER__ADMIN_LISTEN=" + admin}, []string{"usage", "demo"}, 1, "", "set L1GW_SERVER__ADMIN_TOKEN"},
		{"--addr wins", []string{"L1GW_SERVER__ADMIN_TOKEN=s3cret", "L1GW_SERVER__ADMIN_LISTEN=127.0.0.1:1"}, []string{"--addr", admin, "usage", "demo"}, 0, `"tenant": "demo"`, ""},
		{"nobody there", []string{"L1GW_SERVER__ADMIN_LISTEN=" + freeAddr(t)}, []string{"reload"}, 1, "", "connection refused"},
		{"no command", env, nil, 2, "", "usage: l1gw admin"},
		{"unknown command", env, []string{"frob"}, 2, "", `unknown command "frob"`},
		{"usage without tenant", env, []string{"usage"}, 2, "", "usage: l1gw admin usage TENANT"},
		{"listen address on every interface", []string{"L1GW_SERVER__ADMIN_TOKEN=s3cret", "L1GW_SERVER__ADMIN_LISTEN=:" + strings.Split(admin, ":")[1]}, []string{"usage", "demo"}, 0, `"tenant": "demo"`, ""},
	}
	adminStdin = strings.NewReader("demo-key\n")
	defer func() { adminStdin = os.Stdin }()
	if code, out, errOut := adm(env, "simulate", "--key", "-", "--path", "/x"); code != 0 || !strings.Contains(out, `"tenant": "demo"`) {
		t.Errorf("simulate --key - with the key on stdin: exit %d, %q %q; want demo's simulation", code, out, errOut)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := adm(tc.env, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
				t.Errorf("l1gw admin %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					tc.args, code, out, errOut, tc.code, tc.out, tc.err)
			}
			if strings.Contains(out+errOut, "s3cret") {
				t.Errorf("the token appears in the output: %q %q", out, errOut)
			}
		})
	}
}
