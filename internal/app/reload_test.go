package app

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	vmmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/internal/admin"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/tenants"
)

// reloadConfig is a config file for the reload tests: tenant "bulk"
// always, the upstream at UPSTREAM, and EXTRA appended to tenant_list.
const reloadConfig = `
server:
  listen: "127.0.0.1:0"
  admin_listen: "127.0.0.1:0"
  admin_token: tok
  shutdown_grace: 5s
  config_reload_interval: INTERVAL
plans:
  huge:
    limits:
      - {name: per_second, limit: 1000000000, window: 1s}
  small:
    limits:
      - {name: per_minute, limit: LIMIT, window: 1m}
tenant_list:
  - {id: bulk, plan: huge, keys: [bulk-key]}
EXTRA
upstreams:
  main:
    targets: ["UPSTREAM"]
    timeout: 20s
    health: {path: ""}
routes:
  - {path_prefix: /, upstream: main}
`

// reloadFile writes reloadConfig to path with its placeholders filled.
type reloadFile struct {
	path     string
	interval string
	upstream string
	limit    int
	extra    []string // tenant_list entries
	broken   bool     // not YAML at all
}

func (f reloadFile) write(t testing.TB) {
	t.Helper()
	var extra strings.Builder
	for _, e := range f.extra {
		extra.WriteString("  - " + e + "\n")
	}
	body := strings.NewReplacer("INTERVAL", f.interval, "UPSTREAM", f.upstream, "LIMIT", fmt.Sprint(f.limit),
		"EXTRA\n", extra.String()).Replace(reloadConfig)
	if f.broken {
		body = "tenant_list: [unclosed\n"
	}
	if err := os.WriteFile(f.path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startReloadable writes f and starts a gateway that re-reads it.
func startReloadable(t *testing.T, f reloadFile) (*running, *App) {
	t.Helper()
	f.write(t)
	return startReloading(t, f.path)
}

// startReloading starts a gateway on the config file at path, which it
// re-reads.
func startReloading(t *testing.T, path string) (*running, *App) {
	t.Helper()
	in := config.Input{File: path}
	loaded, err := HashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	var app *App
	r := startAppWith(t, cfg, quiet, func(a *App) {
		app = a
		a.Reloads(func() (*config.Config, error) { return config.Load(in) }, path, loaded)
	})
	return r, app
}

// answering is an upstream that answers its name.
func answering(t *testing.T, name string) string {
	return testkit.StartUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(name) }).URL
}

// adminReload is POST /v1/reload with the token.
func adminReload(t *testing.T, r *running) *fasthttp.Response {
	t.Helper()
	return call(t, r.admin, "POST", "/v1/reload", "Authorization", "Bearer tok")
}

// pacedLoad sends GET url with the header at a fixed rate, each request
// on its own goroutine so that a slow one does not hold the next back (an
// open loop, as a load generator's), until stop.
type pacedLoad struct {
	client   *fasthttp.Client
	stopped  chan struct{}
	stopOnce sync.Once
	sent     sync.WaitGroup
	mu       sync.Mutex
	codes    map[int]int
	failures []string
	took     []time.Duration
}

// startPacedLoad starts sending every interval; the test's cleanup stops
// it, should the test end before it calls stop.
func startPacedLoad(t *testing.T, url, header, value string, interval time.Duration) *pacedLoad {
	// Timeouts far past any reload: on a starved test machine a slow
	// request is not a failed one, nor is one that waits for a connection
	// while 512 others are slow.
	client := &fasthttp.Client{ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, MaxConnWaitTimeout: 30 * time.Second}
	l := &pacedLoad{client: client, stopped: make(chan struct{}), codes: map[int]int{}}
	t.Cleanup(l.stop)
	l.sent.Add(1)
	go func() {
		defer l.sent.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-l.stopped:
				return
			case <-tick.C:
			}
			l.sent.Add(1)
			go func() {
				defer l.sent.Done()
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI(url)
				req.Header.Set(header, value)
				start := time.Now()
				err := client.DoTimeout(req, resp, 30*time.Second)
				l.mu.Lock()
				defer l.mu.Unlock()
				l.took = append(l.took, time.Since(start))
				switch {
				case err != nil:
					l.codes[0]++
					l.failures = append(l.failures, err.Error())
				default:
					l.codes[resp.StatusCode()]++
					if resp.StatusCode() != 200 {
						l.failures = append(l.failures, fmt.Sprintf("%d %s", resp.StatusCode(), resp.Body()))
					}
				}
			}()
		}
	}()
	return l
}

// stop sends no more, waits for every answer and closes the connections.
func (l *pacedLoad) stop() {
	l.stopOnce.Do(func() {
		close(l.stopped)
		l.sent.Wait()
		l.client.CloseIdleConnections()
	})
}

// p99 is the 99th percentile of the answers' times; call after stop.
func (l *pacedLoad) p99() time.Duration {
	if len(l.took) == 0 {
		return 0
	}
	slices.Sort(l.took)
	return l.took[(len(l.took)*99+99)/100-1]
}

// TestReloadUnderLoad: ten reloads while 200 requests a second arrive,
// one of an invalid file and one that needs a restart. Not one request
// fails, each applied change is served at once, and each refused one
// leaves the old config serving.
func TestReloadUnderLoad(t *testing.T) {
	a, b := answering(t, "A"), answering(t, "B")
	f := reloadFile{path: filepath.Join(t.TempDir(), "l1gw.yaml"), interval: "0s", upstream: a, limit: 2}
	gw, app := startReloadable(t, f)

	load := startPacedLoad(t, "http://"+gw.proxy+"/load", "X-Api-Key", "bulk-key", 5*time.Millisecond)
	expect := func(key, want string, code int) {
		t.Helper()
		req, resp := &fasthttp.Request{}, &fasthttp.Response{}
		req.SetRequestURI("http://" + gw.proxy + "/x")
		req.Header.Set("X-API-Key", key)
		if err := fasthttp.DoTimeout(req, resp, 30*time.Second); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if resp.StatusCode() != code || (want != "" && string(resp.Body()) != want) {
			t.Errorf("%s: got %d %q; want %d %q", key, resp.StatusCode(), resp.Body(), code, want)
		}
	}
	reload := func(step string, f reloadFile, wantStatus int, wantResult string) {
		t.Helper()
		f.write(t)
		resp := adminReload(t, gw)
		if resp.StatusCode() != wantStatus {
			t.Fatalf("%s: POST /v1/reload got %d %s; want %d", step, resp.StatusCode(), resp.Body(), wantStatus)
		}
		if last := app.reload.last.Load(); last == nil || last.Result != wantResult {
			t.Fatalf("%s: last reload %+v; want %s", step, last, wantResult)
		}
		time.Sleep(100 * time.Millisecond) // the load runs across each config
	}
	time.Sleep(200 * time.Millisecond)

	f.extra = []string{"{id: rl-acme, plan: small, keys: [acme-key]}"}
	reload("1 add a tenant", f, 200, admin.ReloadOK)
	expect("acme-key", "A", 200)

	f.upstream = b
	reload("2 move the upstream", f, 200, admin.ReloadOK)
	expect("bulk-key", "B", 200)

	broken := f
	broken.broken = true
	reload("3 an invalid file", broken, 400, admin.ReloadInvalid)
	expect("acme-key", "B", 200)

	reload("4 the same file again", f, 200, admin.ReloadUnchanged)

	f.limit = 1
	reload("5 lower a limit", f, 200, admin.ReloadOK)
	expect("acme-key", "", 429) // two used (steps 1 and 3); the limit is now 1

	restart := f
	restart.interval = "5s" // server.config_reload_interval is read at start
	reload("6 a key that needs a restart", restart, 409, admin.ReloadRestartRequired)
	expect("acme-key", "", 429)

	f.limit = 100
	reload("7 raise the limit", f, 200, admin.ReloadOK)
	expect("acme-key", "B", 200)

	f.extra = []string{"{id: rl-acme, plan: small, keys: [acme-key-2]}"}
	reload("8 rotate the key", f, 200, admin.ReloadOK)
	expect("acme-key", "", 401)
	expect("acme-key-2", "B", 200)

	f.upstream = a
	reload("9 move the upstream back", f, 200, admin.ReloadOK)
	expect("bulk-key", "A", 200)

	f.extra = nil
	reload("10 remove the tenant", f, 200, admin.ReloadOK)
	expect("acme-key-2", "", 401)
	var exported strings.Builder
	vmmetrics.WritePrometheus(&exported, false)
	if strings.Contains(exported.String(), `tenant="rl-acme"`) {
		t.Error("the removed tenant rl-acme still has metric series")
	}

	load.stop()
	requests := len(load.took)
	t.Logf("load: %d requests, codes %v, P99 %s", requests, load.codes, load.p99())
	if requests < 100 {
		t.Errorf("got %d requests under load; want the load to have run across the reloads", requests)
	}
	if len(load.failures) > 0 {
		t.Errorf("%d of %d requests failed across the reloads; first: %q", len(load.failures), requests, load.failures[0])
	}

	// /readyz shows the last reload; /v1/config the config in force.
	resp := call(t, gw.admin, "GET", "/readyz")
	var ready admin.Readiness
	if err := json.Unmarshal(resp.Body(), &ready); err != nil || resp.StatusCode() != 200 || ready.Reload == nil || ready.Reload.Result != admin.ReloadOK || ready.Tenants != 1 {
		t.Errorf("/readyz: %d %s; want 200, one tenant, the last reload ok", resp.StatusCode(), resp.Body())
	}
	if body := string(call(t, gw.admin, "GET", "/v1/config", "Authorization", "Bearer tok").Body()); strings.Contains(body, b) || !strings.Contains(body, a) {
		t.Errorf("/v1/config after the reloads shows %s; want upstream A's address and not B's", body)
	}
}

// TestReloadOnFileChange: with server.config_reload_interval set, editing
// the file is enough; a broken edit is refused and shown by /readyz.
func TestReloadOnFileChange(t *testing.T) {
	a := answering(t, "A")
	f := reloadFile{path: filepath.Join(t.TempDir(), "l1gw.yaml"), interval: "20ms", upstream: a, limit: 5}
	gw, _ := startReloadable(t, f)
	if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", "acme-key").StatusCode(); got != 401 {
		t.Fatalf("acme-key before the edit: got %d; want 401", got)
	}
	f.extra = []string{"{id: acme, plan: small, keys: [acme-key]}"}
	f.write(t)
	testkit.Eventually(t, 5*time.Second, func() error {
		if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", "acme-key").StatusCode(); got != 200 {
			return fmt.Errorf("acme-key after the edit: got %d; want 200", got)
		}
		return nil
	})
	f.broken = true
	f.write(t)
	testkit.Eventually(t, 5*time.Second, func() error {
		var ready admin.Readiness
		body := call(t, gw.admin, "GET", "/readyz").Body()
		if err := json.Unmarshal(body, &ready); err != nil || ready.Reload == nil || ready.Reload.Result != admin.ReloadInvalid {
			return fmt.Errorf("/readyz after a broken edit: %s; want the last reload invalid", body)
		}
		if ready.Reload.Trigger != "file" {
			return fmt.Errorf("/readyz: %+v; want the reload triggered by the file", *ready.Reload)
		}
		return nil
	})
	if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", "acme-key").StatusCode(); got != 200 {
		t.Errorf("acme-key after a broken edit: got %d; want 200 (the old config serves)", got)
	}
}

// TestRefusedReloadShowsNoSecret: a plain key pasted into key_hashes
// refuses the reload, and neither the open /readyz nor the answer of
// /v1/reload quotes it.
func TestRefusedReloadShowsNoSecret(t *testing.T) {
	f := reloadFile{path: filepath.Join(t.TempDir(), "l1gw.yaml"), interval: "0s", upstream: answering(t, "A"), limit: 5}
	gw, _ := startReloadable(t, f)
	f.extra = []string{"{id: acme, plan: small, key_hashes: [sk-live-TOPSECRET]}"}
	f.write(t)
	resp := adminReload(t, gw)
	if resp.StatusCode() != 400 || strings.Contains(string(resp.Body()), "TOPSECRET") {
		t.Errorf("POST /v1/reload: %d %s; want 400 without the value", resp.StatusCode(), resp.Body())
	}
	ready := call(t, gw.admin, "GET", "/readyz").Body()
	if strings.Contains(string(ready), "TOPSECRET") || !strings.Contains(string(ready), `"result":"invalid"`) {
		t.Errorf("/readyz: %s; want the reload shown invalid, without the value", ready)
	}
}

// TestReloadNeedsToken: POST /v1/reload is behind the admin token.
func TestReloadNeedsToken(t *testing.T) {
	f := reloadFile{path: filepath.Join(t.TempDir(), "l1gw.yaml"), interval: "0s", upstream: answering(t, "A"), limit: 5}
	gw, app := startReloadable(t, f)
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}} {
		if got := call(t, gw.admin, "POST", "/v1/reload", h...).StatusCode(); got != 401 {
			t.Errorf("POST /v1/reload with %q: got %d; want 401", h, got)
		}
	}
	if last := app.reload.last.Load(); last != nil {
		t.Errorf("a refused call reloaded: %+v", *last)
	}
}

// TestKeyRotationByReload: a reload adds a new key and keeps the old one
// as a retiring key: both work until the old one's expiry, then only the
// new one.
func TestKeyRotationByReload(t *testing.T) {
	// The old key is polled until it expires: a limit it cannot reach.
	f := reloadFile{path: filepath.Join(t.TempDir(), "l1gw.yaml"), interval: "0s", upstream: answering(t, "A"), limit: 1000000}
	f.extra = []string{"{id: acme, plan: small, keys: [old-key]}"}
	gw, _ := startReloadable(t, f)
	status := func(key string) int { return call(t, gw.proxy, "GET", "/x", "X-API-Key", key).StatusCode() }
	expiry := time.Now().Add(3 * time.Second)
	f.extra = []string{"{id: acme, plan: small, keys: [new-key], retiring_keys: [{key: old-key, expires_at: " + expiry.UTC().Format(time.RFC3339Nano) + "}]}"}
	f.write(t)
	if resp := adminReload(t, gw); resp.StatusCode() != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode(), resp.Body())
	}
	o, n := status("old-key"), status("new-key")
	if time.Now().Before(expiry) && (o != 200 || n != 200) {
		t.Fatalf("right after the rotation: old %d, new %d; want both 200", o, n)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		if o := status("old-key"); o != 401 {
			return fmt.Errorf("old-key after its expiry: got %d; want 401", o)
		}
		return nil
	})
	if got := status("new-key"); got != 200 {
		t.Errorf("new-key after the old one expired: got %d; want 200", got)
	}
}

// TestExpiredKeyIsStillHidden: an expired retiring key in Authorization
// is a key of a tenant's still: beside another key it makes the request
// ambiguous (400), never a header the upstream may log.
func TestExpiredKeyIsStillHidden(t *testing.T) {
	up, seen := startUpstream(t)
	f := reloadFile{path: filepath.Join(t.TempDir(), "l1gw.yaml"), interval: "0s", upstream: up, limit: 100}
	f.extra = []string{"{id: acme, plan: small, keys: [acme-key], retiring_keys: [{key: old-acme, expires_at: 2001-01-01T00:00:00Z}]}"}
	gw, _ := startReloadable(t, f)
	if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", "old-acme").StatusCode(); got != 401 {
		t.Fatalf("the expired key alone: got %d; want 401", got)
	}
	if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", "acme-key", "Authorization", "Bearer old-acme").StatusCode(); got != 400 {
		t.Fatalf("a valid key beside the expired one: got %d; want 400", got)
	}
	if n := seen.Count(); n != 0 {
		t.Errorf("the upstream got %d requests; want none", n)
	}
}

// TestReloadKeepsRegistryTenants: a file reload that would leave out a
// registry tenant serving now (its key now a file tenant's, or its plan
// gone from the file) is refused, as the registry API refuses a change
// that would; one that defines the tenant in the file itself (the file's
// wins) is taken.
func TestReloadKeepsRegistryTenants(t *testing.T) {
	f := reloadFile{path: filepath.Join(t.TempDir(), "l1gw.yaml"), interval: "0s", upstream: answering(t, "A"), limit: 5}
	gw, app := startReloadable(t, f)
	app.reload.applyRegistry(&tenants.Registry{Version: 1, Tenants: []tenants.Record{
		{Spec: tenants.Spec{ID: "regco", Plan: "small", Keys: []string{"regco-key"}}}}})
	if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", "regco-key").StatusCode(); got != 200 {
		t.Fatalf("the registry tenant: got %d; want 200", got)
	}
	refused := func(what string) {
		t.Helper()
		resp := adminReload(t, gw)
		if resp.StatusCode() != 400 || !strings.Contains(string(resp.Body()), `tenant \"regco\"`) {
			t.Errorf("reload %s: %d %s; want 400 naming the registry tenant", what, resp.StatusCode(), resp.Body())
		}
		if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", "regco-key").StatusCode(); got != 200 {
			t.Errorf("the registry tenant after the reload %s: got %d; want 200", what, got)
		}
	}
	f.extra = []string{"{id: thief, plan: small, keys: [regco-key]}"}
	f.write(t)
	refused("giving its key to a file tenant")

	f.extra = nil
	f.write(t)
	b, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.path, []byte(strings.Replace(string(b), "  small:\n", "  smaller:\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	refused("removing its plan")

	// The file defines regco itself: its definition wins, as at start.
	f.extra = []string{"{id: regco, plan: huge, keys: [file-regco-key]}"}
	f.write(t)
	if resp := adminReload(t, gw); resp.StatusCode() != 200 {
		t.Fatalf("reload defining regco in the file: %d %s; want 200", resp.StatusCode(), resp.Body())
	}
	if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", "file-regco-key").StatusCode(); got != 200 {
		t.Errorf("the file's regco: got %d; want 200", got)
	}
}

// TestFileHeldByTheRegistryIsReadAgain: a file edit refused for leaving
// out a registry tenant is read again, by the file watch, once the
// registry changes: the refusal was the registry's state as much as the
// file's, and the file itself does not change again.
func TestFileHeldByTheRegistryIsReadAgain(t *testing.T) {
	f := reloadFile{path: filepath.Join(t.TempDir(), "l1gw.yaml"), interval: "20ms", upstream: answering(t, "A"), limit: 5}
	gw, app := startReloadable(t, f)
	regco := func(key string) *tenants.Registry {
		return &tenants.Registry{Version: 1, Tenants: []tenants.Record{{Spec: tenants.Spec{ID: "regco", Plan: "small", Keys: []string{key}}}}}
	}
	app.reload.applyRegistry(regco("regco-key"))
	f.extra = []string{"{id: thief, plan: small, keys: [regco-key]}"}
	f.write(t)
	until(t, "the edit refused", 5*time.Second, func() bool {
		last := app.reload.last.Load()
		return last != nil && last.Result == admin.ReloadInvalid
	})
	if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", "regco-key").StatusCode(); got != 200 {
		t.Fatalf("regco after the refusal: got %d; want 200", got)
	}
	app.reload.applyRegistry(regco("regco-key-2")) // regco gives the key up
	until(t, "the edit read again and applied", 5*time.Second, func() bool {
		last := app.reload.last.Load()
		return last != nil && last.Result == admin.ReloadOK && last.Trigger == "file"
	})
	if ten, _ := app.reload.table.Load().Peek([]byte("regco-key")); ten == nil || ten.ID != "thief" {
		t.Errorf("regco-key resolves to %v after the file was applied; want thief", ten)
	}
}
