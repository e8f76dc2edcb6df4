package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/upstream"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testConfig is a config with one tenant "acme" (key "acme-key", 3 per
// minute; POST /v1/expensive 1 per minute), others, and the upstream at
// UPSTREAM. Tenant "trying" (key "trying-key") tries a limit of 2 per
// hour in shadow.
const testConfig = `
server:
  listen: "127.0.0.1:0"
  admin_listen: "127.0.0.1:0"
  shutdown_grace: 5s
  max_header_bytes: 4096
  max_body_bytes: 1024
plans:
  small:
    limits:
      - {name: per_minute, limit: 3, window: 1m}
      - {name: per_hour, limit: 100, window: 1h}
  huge:
    limits:
      - {name: per_second, limit: 1000000000, window: 1s}
  fifty:
    limits:
      - {name: per_10s, limit: 50, window: 10s}
  shadowed:
    limits:
      - {name: per_hour, limit: 1000000000, window: 1h}
      - {name: tighter, limit: 2, window: 1h, mode: shadow}
  five_at_once:
    concurrency: 5
    limits:
      - {name: per_second, limit: 1000000000, window: 1s}
  counted:
    limits:
      - {name: per_second, limit: 1000000000, window: 1s, algorithm: sliding_window}
      - {name: monthly, limit: 1000000000000, algorithm: fixed, period: month, anchor: 15, timezone: Europe/Berlin}
  quota:
    limits:
      - {name: daily, limit: 1, algorithm: fixed, period: day}
tenant_list:
  - id: acme
    plan: small
    keys: [acme-key]
    routes:
      - {methods: [POST], path_prefix: /v1/expensive, limits: [{name: expensive, limit: 1, window: 1m}]}
  - id: bulk
    plan: huge
    keys: [bulk-key]
  - id: team
    plan: fifty
    keys: [team-key]
  - id: trying
    plan: shadowed
    keys: [trying-key]
  - id: crowd
    plan: five_at_once
    keys: [crowd-key]
  - id: counter
    plan: counted
    keys: [counter-key]
  - id: quota
    plan: quota
    keys: [quota-key]
upstreams:
  main:
    targets: ["UPSTREAM"]
    timeout: 300ms
    health: {path: ""}
routes:
  - {path_prefix: /, upstream: main}
`

// startUpstream runs an upstream on loopback that records requests and
// answers 200 "upstream ok", with a hop-by-hop header the gateway must
// strip; /slow sleeps 600 ms first.
func startUpstream(t testing.TB) (string, *testkit.Upstream) {
	t.Helper()
	u := testkit.StartUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if strings.HasPrefix(string(ctx.Path()), "/slow") {
			time.Sleep(600 * time.Millisecond)
		}
		ctx.Response.Header.Set("Connection", "X-Hop")
		ctx.Response.Header.Set("X-Hop", "1")
		ctx.SetBodyString("upstream ok")
	})
	return u.URL, u
}

// loadConfig loads testConfig for upstream, plus sets.
func loadConfig(t testing.TB, upstreamURL string, sets ...string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "l1gw.yaml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(testConfig, "UPSTREAM", upstreamURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Input{File: p, Sets: sets})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// running is a gateway App serving on loopback.
type running struct {
	proxy, admin string
	cancel       context.CancelFunc
	done         chan error
}

func startApp(t testing.TB, cfg *config.Config) *running {
	t.Helper()
	return startAppLog(t, cfg, quiet)
}

func startAppLog(t testing.TB, cfg *config.Config, log *slog.Logger) *running {
	t.Helper()
	return startAppWith(t, cfg, log, nil)
}

// startAppWith is startAppLog, with setup (if not nil) called on the App
// before it runs.
func startAppWith(t testing.TB, cfg *config.Config, log *slog.Logger, setup func(*App)) *running {
	t.Helper()
	app, err := Build(cfg, log)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if setup != nil {
		setup(app)
	}
	pl, al, err := app.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{proxy: pl.Addr().String(), admin: al.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- app.Run(ctx, pl, al) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not stop within 10s")
	}
	return nil
}

// get sends a request through the gateway with a fresh client.
func call(t testing.TB, addr, method, path string, headers ...string) *fasthttp.Response {
	t.Helper()
	req, resp := &fasthttp.Request{}, &fasthttp.Response{}
	req.SetRequestURI("http://" + addr + path)
	req.Header.SetMethod(method)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// raw writes bytes to addr and returns the response's status line code.
func raw(t testing.TB, addr, payload string) *fasthttp.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, payload); err != nil {
		t.Fatal(err)
	}
	resp := &fasthttp.Response{}
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return resp
}

// problemBody decodes a problem+json body.
func problemBody(t testing.TB, resp *fasthttp.Response) map[string]any {
	t.Helper()
	if ct := string(resp.Header.ContentType()); ct != "application/problem+json" {
		t.Fatalf("content type %q; want application/problem+json (body %q)", ct, resp.Body())
	}
	var m map[string]any
	if err := json.Unmarshal(resp.Body(), &m); err != nil {
		t.Fatalf("problem body %q: %v", resp.Body(), err)
	}
	if int(m["status"].(float64)) != resp.StatusCode() {
		t.Fatalf("problem status %v; response status %d", m["status"], resp.StatusCode())
	}
	return m
}

func withTimeout(s upstream.Spec, d time.Duration) upstream.Spec {
	s.Timeout = d
	return s
}

// fire sends n GETs at once, the i-th as to(i) says (its URL and API
// key), and counts the statuses (-1: no answer). check, if not nil, sees
// every response.
func fire(t *testing.T, n int, to func(i int) (url, key string), check func(resp *fasthttp.Response)) map[int]int {
	t.Helper()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := &fasthttp.Request{}, &fasthttp.Response{}
			url, key := to(i)
			req.SetRequestURI(url)
			req.Header.Set("X-API-Key", key)
			code := -1
			if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err == nil {
				code = resp.StatusCode()
				if check != nil {
					check(resp)
				}
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return codes
}

// metricValue is the value of series (its name and labels, as /metrics
// writes them) on the admin listener at addr. Counters are the process's,
// shared by every gateway a test starts: compare a value before and after.
func metricValue(t *testing.T, addr, series string) float64 {
	t.Helper()
	for line := range strings.Lines(string(call(t, addr, "GET", "/metrics").Body())) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s %q: %v", series, v, err)
			}
			return n
		}
	}
	t.Fatalf("/metrics lacks %s", series)
	return 0
}

// admittedThrough sends wire, one request, to a gateway on the test config
// in front of a raw upstream, wants it answered 200, and returns what the
// upstream read, bytes as they came.
func admittedThrough(t *testing.T, wire string) string {
	t.Helper()
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL))
	c := dial(t, gw.proxy)
	c.send(wire)
	if resp := c.response(); resp.StatusCode() != 200 {
		t.Fatalf("got %d (%s); want 200", resp.StatusCode(), resp.Body())
	}
	return up.Raw()
}
