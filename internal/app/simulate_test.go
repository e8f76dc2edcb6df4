package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/admin"
	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
)

// simulate posts body to /v1/simulate with the admin token.
func simulate(t *testing.T, gw *running, body string) (*fasthttp.Response, admin.Simulation) {
	t.Helper()
	req, resp := &fasthttp.Request{}, &fasthttp.Response{}
	req.SetRequestURI("http://" + gw.admin + "/v1/simulate")
	req.Header.SetMethod("POST")
	req.Header.Set("Authorization", "Bearer tok")
	req.SetBodyString(body)
	if err := fasthttp.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	var s admin.Simulation
	if resp.StatusCode() == 200 {
		if err := json.Unmarshal(resp.Body(), &s); err != nil {
			t.Fatalf("simulation %s: %v", resp.Body(), err)
		}
	}
	return resp, s
}

// rules is "name used/limit fits" for each rule of s.
func rules(s admin.Simulation) string {
	var b []string
	for _, r := range s.Rules {
		b = append(b, fmt.Sprintf("%s %d/%d %v", r.Name, r.Used, r.Limit, r.Fits))
	}
	return strings.Join(b, ", ")
}

// TestSimulate: POST /v1/simulate decides by key or tenant, method and
// path against the rules in force and the use recorded, and records
// nothing, on the memory store and on Redis (whose sorted sets it leaves
// as they were).
func TestSimulate(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		up, _ := startUpstream(t)
		gw := startApp(t, loadConfig(t, up, "server.admin_token=tok"))
		checkSimulate(t, gw, nil)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		node := redistest.Server(t)
		up, _ := startUpstream(t)
		gw := startApp(t, loadConfig(t, up, "server.admin_token=tok", "redis.mode=standalone", "redis.addrs="+node.Addr(), "ratelimit.key_prefix=sim", "ratelimit.budget=3s"))
		c := node.Client(t)
		checkSimulate(t, gw, func() string {
			members, err := c.ZRangeWithScores(t.Context(), limiter.Key("sim", "acme", "per_minute"), 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			keys, _ := c.Keys(t.Context(), "*").Result()
			return fmt.Sprint(len(keys), members)
		})
	})
}

// TestSimulateAnonymousIPv6: a simulation for an anonymous IPv6 caller
// reads the count of its /64, as the gateway counts it.
func TestSimulateAnonymousIPv6(t *testing.T) {
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "server.admin_token=tok", "tenants.unknown=anonymous",
		"tenants.anonymous_plan=small", "server.trusted_proxies=127.0.0.1/32"))
	for i := range 2 {
		if got := call(t, gw.proxy, "GET", "/", "X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%d", i+1)).StatusCode(); got != 200 {
			t.Fatalf("anonymous request %d: got %d; want 200", i+1, got)
		}
	}
	for ip, want := range map[string]string{"2001:db8:1:2::99": " 2/3 ", "2001:db8:1:3::1": " 0/3 "} {
		resp, s := simulate(t, gw, `{"method":"GET","path":"/","client_ip":"`+ip+`"}`)
		if resp.StatusCode() != 200 || !strings.Contains(rules(s), want) {
			t.Errorf("client_ip %s: %d %s; want a rule at%s", ip, resp.StatusCode(), resp.Body(), want)
		}
	}
}

// TestSimulateRefusesWhatTheGatewayRefuses: a simulation of a request the
// gateway would refuse before any decision (a method it does not
// forward, an ambiguous path) is a 400 that says so, not "allowed".
func TestSimulateRefusesWhatTheGatewayRefuses(t *testing.T) {
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "server.admin_token=tok"))
	for _, tc := range []struct{ method, path, want string }{
		{"GETTTT", "/x", "method"},
		{"PURGE", "/x", "method"},
		{"TRACE", "/x", "method"},
		{"GET", "/%zz", "path"},
		{"GET", "/a/../b", "path"},
		{"GET", "/a%2fb?q=1", "path"},
		{"GET", "/x#frag", "path"},
		{"GET", "/x y", "path"},
	} {
		resp, _ := simulate(t, gw, `{"key":"acme-key","method":"`+tc.method+`","path":"`+tc.path+`"}`)
		if resp.StatusCode() != 400 || !strings.Contains(string(resp.Body()), `"detail":"`+tc.want) {
			t.Errorf("%s %s: got %d %s; want 400 about the %s", tc.method, tc.path, resp.StatusCode(), resp.Body(), tc.want)
		}
	}
	if resp, s := simulate(t, gw, `{"key":"acme-key","method":"GET","path":"/x?q=1"}`); resp.StatusCode() != 200 || s.Result != "allowed" {
		t.Errorf("GET /x?q=1: got %d %s; want allowed", resp.StatusCode(), resp.Body())
	}
	// A misspelt field, or one given twice, is no simulation of the
	// request meant.
	for _, body := range []string{
		`{"key":"acme-key","method":"GET","path":"/x","hots":"api.test"}`,
		`{"key":"acme-key","method":"GET","path":"/x","path":"/v1/expensive/x"}`,
	} {
		if resp, _ := simulate(t, gw, body); resp.StatusCode() != 400 {
			t.Errorf("%s: got %d %s; want 400", body, resp.StatusCode(), resp.Body())
		}
	}
}

// checkSimulate runs the simulations against gw; state, if not nil, is
// the store's state, which no simulation may change.
func checkSimulate(t *testing.T, gw *running, state func() string) {
	for range 2 {
		if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", "acme-key").StatusCode(); got != 200 {
			t.Fatalf("acme's request: got %d; want 200", got)
		}
	}
	var before string
	if state != nil {
		before = state()
	}
	resp, s := simulate(t, gw, `{"key":"acme-key","method":"GET","path":"/x"}`)
	if resp.StatusCode() != 200 || s.Tenant != "acme" || s.Result != "allowed" || rules(s) != "per_minute 2/3 true, per_hour 2/100 true" {
		t.Errorf("GET /x by key: %d %s; want allowed, per_minute 2/3", resp.StatusCode(), resp.Body())
	}
	// The path as the gateway matches it: percent-decoded.
	_, s = simulate(t, gw, `{"tenant":"acme","method":"POST","path":"/v1/%65xpensive/x"}`)
	if !strings.Contains(rules(s), "expensive 0/1 true") {
		t.Errorf("POST /v1/%%65xpensive by tenant: %+v; want the expensive rule, as the gateway decodes the path", s)
	}
	// The route's own rule joins for POST /v1/expensive.
	_, s = simulate(t, gw, `{"tenant":"acme","method":"POST","path":"/v1/expensive/x"}`)
	if s.Result != "allowed" || !strings.Contains(rules(s), "expensive 0/1 true") {
		t.Errorf("POST /v1/expensive by tenant: %+v; want allowed, with the expensive rule", s)
	}
	for range 3 { // simulated again and again: nothing is used up
		if _, s = simulate(t, gw, `{"key":"acme-key","method":"GET","path":"/x"}`); s.Result != "allowed" {
			t.Fatalf("a repeated simulation: %+v; want allowed (simulations record nothing)", s)
		}
	}
	if state != nil {
		if after := state(); after != before {
			t.Errorf("the store changed across simulations: %s → %s", before, after)
		}
	}
	if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", "acme-key").StatusCode(); got != 200 {
		t.Fatalf("acme's third request: got %d; want 200 (the simulations used nothing)", got)
	}
	if _, s = simulate(t, gw, `{"key":"acme-key","method":"GET","path":"/x"}`); s.Result != "denied" || rules(s) != "per_minute 3/3 false, per_hour 3/100 true" {
		t.Errorf("GET /x with the minute used up: %+v; want denied by per_minute", s)
	}
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"key":"nope","method":"GET","path":"/x"}`, 404},
		{`{"tenant":"nope","method":"GET","path":"/x"}`, 404},
		{`{"key":"acme-key","tenant":"acme","method":"GET","path":"/x"}`, 400},
		{`{"key":"acme-key","path":"/x"}`, 400},
		{`{"key":"acme-key","method":"GET","path":"x"}`, 400},
		{`{"key":"acme-key","method":"get","path":"/x"}`, 400},
		{`{"method":"GET","path":"/x"}`, 400},
		{`not json`, 400},
	} {
		if resp, _ := simulate(t, gw, tc.body); resp.StatusCode() != tc.code {
			t.Errorf("%s: got %d %s; want %d", tc.body, resp.StatusCode(), resp.Body(), tc.code)
		}
	}
}

// TestUnknownKeysCreateNoRedisState: requests with unknown, missing or
// malformed keys are refused before the limiter: Redis holds no key for
// them, however many there are.
func TestUnknownKeysCreateNoRedisState(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t)
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "redis.mode=standalone", "redis.addrs="+node.Addr(), "ratelimit.key_prefix=unk", "ratelimit.budget=3s"))
	c := node.Client(t)
	for i := range 50 {
		if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", fmt.Sprintf("nope-%d", i)).StatusCode(); got != 401 {
			t.Fatalf("unknown key: got %d; want 401", got)
		}
	}
	if got := call(t, gw.proxy, "GET", "/x").StatusCode(); got != 401 {
		t.Fatalf("no key: got %d; want 401", got)
	}
	if got := call(t, gw.proxy, "GET", "/x", "Authorization", "Bearer "+strings.Repeat("k", 200)).StatusCode(); got != 401 {
		t.Fatalf("long unknown bearer key: got %d; want 401", got)
	}
	keys, err := c.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("Redis holds %q after only refused requests; want nothing", keys)
	}
	// The same check can fail: one known key does create state.
	if got := call(t, gw.proxy, "GET", "/x", "X-API-Key", "acme-key").StatusCode(); got != 200 {
		t.Fatalf("acme-key: got %d; want 200", got)
	}
	if n, _ := c.DBSize(t.Context()).Result(); n == 0 {
		t.Error("no Redis key after an admitted request; the check above proves nothing")
	}
}

// TestAdminBodyCap: the admin listener reads at most 64 KiB of a body,
// and reads it before the token is checked: a larger one is refused
// (413), whoever sends it.
func TestAdminBodyCap(t *testing.T) {
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "server.admin_token=tok", "server.max_body_bytes=10485760"))
	req, resp := &fasthttp.Request{}, &fasthttp.Response{}
	req.SetRequestURI("http://" + gw.admin + "/v1/simulate")
	req.Header.SetMethod("POST")
	req.SetBodyString(strings.Repeat("x", 100<<10))
	if err := fasthttp.Do(req, resp); err == nil && (resp.StatusCode() != 413 || !strings.Contains(string(resp.Body()), "the admin API's cap, 64 KiB")) {
		t.Errorf("100 KiB to the admin listener: got %d %s; want 413 naming the admin API's cap (or the connection closed)", resp.StatusCode(), resp.Body())
	}
	if resp, _ := simulate(t, gw, `{"key":"acme-key","method":"GET","path":"/x"}`); resp.StatusCode() != 200 {
		t.Errorf("a small simulation after it: got %d; want 200", resp.StatusCode())
	}
}

// TestSimulateCountsSharedLimits: /v1/simulate decides against the
// shared limits of the route a request matches too, as the gateway does:
// after two requests of one tenant fill a route's limit of 2, another
// tenant's simulated request there is denied by it, and one elsewhere is
// not.
func TestSimulateCountsSharedLimits(t *testing.T) {
	t.Parallel()
	up, _ := startUpstream(t)
	limits := []limiter.Rule{{Name: "search_per_min", Limit: 2, Window: time.Minute}}
	gw := startApp(t, withRoute(loadConfig(t, up, "server.admin_token=tok"), "search", limits, 0))
	for range 2 {
		if resp := call(t, gw.proxy, "GET", "/search/x", "X-API-Key", "bulk-key"); resp.StatusCode() != 200 {
			t.Fatalf("a request on the route: %d; want 200", resp.StatusCode())
		}
	}
	_, sim := simulate(t, gw, `{"tenant":"trying","method":"GET","path":"/search/y"}`)
	if sim.Result != "denied" || !strings.Contains(rules(sim), "search_per_min 2/2 false") {
		t.Fatalf("simulated on the route: %s [%s]; want denied by search_per_min 2/2", sim.Result, rules(sim))
	}
	_, sim = simulate(t, gw, `{"tenant":"trying","method":"GET","path":"/elsewhere"}`)
	if sim.Result != "allowed" || strings.Contains(rules(sim), "search_per_min") {
		t.Fatalf("simulated elsewhere: %s [%s]; want allowed, without the route's limit", sim.Result, rules(sim))
	}
}

// TestAdminConnectionCap: the admin listener serves at most adminConns
// connections at once; one past them is answered 503 at once, and a
// probe is served again once they close.
func TestAdminConnectionCap(t *testing.T) {
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "server.admin_token=tok"))
	var held []net.Conn
	for i := range adminConns {
		held = append(held, dialFrom(t, fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250), gw.admin))
	}
	healthz := func() (string, error) {
		c := dialFrom(t, "127.0.0.1", gw.admin)
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		return bufio.NewReader(c).ReadString('\n')
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if line, err := healthz(); err != nil || !strings.Contains(line, " 503 ") {
			return fmt.Errorf("connection %d: %q, %v; want 503", adminConns+1, line, err)
		}
		return nil
	})
	for _, c := range held {
		c.Close()
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if line, err := healthz(); err != nil || !strings.Contains(line, " 200 ") {
			return fmt.Errorf("/healthz after the connections closed: %q, %v", line, err)
		}
		return nil
	})
}

// TestAdminConnectionCapPerAddress: one client address holds at most
// adminConnsPerIP of the admin listener's connections; one more from it is
// answered 429 at once, while another address (the kubelet's probe) is
// still served, and l1gw_admin_connections_rejected_total counts it.
func TestAdminConnectionCapPerAddress(t *testing.T) {
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "server.admin_token=tok"))
	rejected := func() float64 {
		return metricValue(t, gw.admin, `l1gw_admin_connections_rejected_total{reason="max_conns_per_ip"}`)
	}
	before := rejected()
	for range adminConnsPerIP {
		dialFrom(t, "127.0.7.7", gw.admin)
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if got := refusedWith(t, dialFrom(t, "127.0.7.7", gw.admin)); !strings.Contains(got, " 429 ") {
			return fmt.Errorf("connection %d from one address: %q; want 429", adminConnsPerIP+1, got)
		}
		return nil
	})
	if got := rejected() - before; got < 1 {
		t.Errorf("l1gw_admin_connections_rejected_total{reason=\"max_conns_per_ip\"} grew by %v; want at least 1", got)
	}
	c := dialFrom(t, "127.0.0.1", gw.admin)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(line, " 200 ") {
		t.Errorf("/healthz from another address: %q, %v; want 200", line, err)
	}
}
