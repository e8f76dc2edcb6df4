package observability

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// repoRoot is the gateway's module, two levels up.
const repoRoot = "../.."

// adminToken is the test gateway's admin token.
const adminToken = "obs-test-token"

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls ok until it holds or the deadline passes.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// start runs a process until the test ends; its output goes to log. The
// channel it returns is closed when the process exits.
func start(t *testing.T, log string, name string, args ...string) <-chan struct{} {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("%s output:\n%s", name, b)
		}
	})
	return exited
}

// startRedis starts a redis-server of its own on a free loopback port.
func startRedis(t *testing.T, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found: run make test-deps")
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	start(t, filepath.Join(dir, "redis.log"), bin, "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	waitFor(t, "redis-server", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = c.Write([]byte("PING\r\n"))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line == "+PONG\r\n"
	})
	return addr
}

// buildGateway builds cmd/l1gw into dir.
func buildGateway(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "l1gw")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/l1gw")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/l1gw: %v\n%s", err, out)
	}
	return bin
}

// gatewayConfig is the test gateway's config: one tenant with an enforced
// and a shadow rule, an upstream served by the test, one that refuses.
const gatewayConfig = `
server:
  listen: %q
  admin_listen: %q
  admin_token: %q
redis:
  mode: standalone
  addrs: [%q]
tenants:
  source: both
plans:
  basic:
    limits:
      - {name: per_hour, limit: 1000, window: 1h}
tenant_list:
  - id: acme
    plan: basic
    keys: ["acme-key"]
    limits:
      - {name: per_minute, limit: 4, window: 1m}
      - {name: trial, limit: 1, window: 1m, mode: shadow}
upstreams:
  app:
    targets: [%q]
    health: {path: ""}
  down:
    targets: [%q]
    retries: 0
    health: {path: ""}
routes:
  - {path_prefix: "/", upstream: app}
  - {path_prefix: "/down", upstream: down}
`

// gateway is a running l1gw with its addresses.
type gateway struct{ proxy, admin string }

// startGateway builds and starts l1gw against its own redis-server and an
// upstream that answers 500 on /fail.
func startGateway(t *testing.T) gateway {
	t.Helper()
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	redisAddr := startRedis(t, dir)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(up.Close)
	g := gateway{proxy: freeAddr(t), admin: freeAddr(t)}
	cfg := fmt.Sprintf(gatewayConfig, g.proxy, g.admin, adminToken, redisAddr, up.URL, "http://"+freeAddr(t))
	path := filepath.Join(dir, "l1gw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	exited := start(t, filepath.Join(dir, "l1gw.log"), bin, "serve", "--config", path)
	waitFor(t, "l1gw /readyz", func() bool {
		select {
		case <-exited:
			t.Fatal("l1gw exited")
		default:
		}
		return status(t, "GET", "http://"+g.admin+"/readyz", "", "") == http.StatusOK
	})
	return g
}

// status makes a request and returns its status code (0 when it failed).
func status(t *testing.T, method, url, header, value string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		req.Header.Set(header, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// traffic makes the requests that create the lazily created series:
// allowed, shadow-denied, an upstream 500, a refused upstream, denied, a
// bad key, and a config reload; each status is checked.
func (g gateway) traffic(t *testing.T) {
	t.Helper()
	steps := []struct {
		method, path, header, value string
		want                        int
	}{
		{"GET", "/ok", "X-API-Key", "acme-key", 200},   // allowed
		{"GET", "/ok", "X-API-Key", "acme-key", 200},   // allowed, shadow_denied
		{"GET", "/fail", "X-API-Key", "acme-key", 500}, // the upstream's 500
		{"GET", "/down", "X-API-Key", "acme-key", 502}, // refused: an upstream error
		{"GET", "/ok", "X-API-Key", "acme-key", 429},   // denied
		{"GET", "/ok", "X-API-Key", "wrong-key", 401},  // unknown key
	}
	for _, s := range steps {
		if got := status(t, s.method, "http://"+g.proxy+s.path, s.header, s.value); got != s.want {
			t.Fatalf("%s %s (%s): got %d; want %d", s.method, s.path, s.value, got, s.want)
		}
	}
	if got := status(t, "POST", "http://"+g.admin+"/v1/reload", "Authorization", "Bearer "+adminToken); got != 200 {
		t.Fatalf("POST /v1/reload: got %d; want 200", got)
	}
}

// exported is what /metrics shows: for each metric name, each label's
// values.
type exported map[string]map[string]map[string]bool

// names returns the set of metric names.
func (e exported) names() map[string]bool {
	out := make(map[string]bool, len(e))
	for n := range e {
		out[n] = true
	}
	return out
}

// scrape reads the gateway's /metrics.
func (g gateway) scrape(t *testing.T) exported {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := exported{}
	p := parser.NewParser(parser.Options{})
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("/metrics: %q: no value", line)
		}
		ls, err := p.ParseMetric(line[:i])
		if err != nil {
			t.Fatalf("/metrics: %q: %v", line, err)
		}
		name := ls.Get(model.MetricNameLabel)
		if out[name] == nil {
			out[name] = map[string]map[string]bool{}
		}
		ls.Range(func(l labels.Label) {
			if out[name][l.Name] == nil {
				out[name][l.Name] = map[string]bool{}
			}
			out[name][l.Name][l.Value] = true
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
