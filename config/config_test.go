package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/limiter"
)

// base is a valid config: cfgPlans, cfgUpstream, then cfgRoutes, so that
// a case may append a route.
const base = cfgPlans + cfgUpstream + cfgRoutes

const cfgPlans = `
plans:
  free:
    limits:
      - {name: per_second, limit: 10, window: 1s}
tenant_list:
  - {id: acme, plan: free, keys: [k1]}
`

const cfgRoutes = `routes:
  - {path_prefix: /, upstream: api}
`

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "l1gw.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDemoConfigLoads(t *testing.T) {
	c, err := config.Load(config.Input{})
	if err != nil {
		t.Fatalf("Load(demo): %v", err)
	}
	if c.Server.Listen != "127.0.0.1:8080" || c.Redis.Mode != "memory" || len(c.TenantList) != 1 {
		t.Fatalf("demo: got listen %q mode %q tenants %d", c.Server.Listen, c.Redis.Mode, len(c.TenantList))
	}
	up := c.Upstreams["demo"]
	if up.Timeout != 10*time.Second || up.MaxConnsPerTarget != 1024 || up.Health.Path != "/healthz" {
		t.Fatalf("demo upstream: got %+v; want timeout 10s from the file over the upstream defaults", up)
	}
}

func TestLayering(t *testing.T) {
	file := writeFile(t, base+"server:\n  read_timeout: 2s\n  write_timeout: 3s\n  idle_timeout: 4s\n")
	cases := []struct {
		name       string
		env, sets  []string
		wantRead   time.Duration
		wantWrite  time.Duration
		wantIdle   time.Duration
		wantGrace  time.Duration
		wantTarget int
	}{
		{"file over defaults", nil, nil, 2 * time.Second, 3 * time.Second, 4 * time.Second, 20 * time.Second, 1},
		{"env over file", []string{"L1GW_SERVER__READ_TIMEOUT=7s", "OTHER_VAR=x"}, nil, 7 * time.Second, 3 * time.Second, 4 * time.Second, 20 * time.Second, 1},
		{"flag over env", []string{"L1GW_SERVER__READ_TIMEOUT=7s"}, []string{"server.read_timeout=9s", "server.shutdown_grace=1s"}, 9 * time.Second, 3 * time.Second, 4 * time.Second, time.Second, 1},
		{"last flag wins", nil, []string{"server.write_timeout=1s", "server.write_timeout=8s"}, 2 * time.Second, 8 * time.Second, 4 * time.Second, 20 * time.Second, 1},
		{"env list is comma-separated", []string{"L1GW_UPSTREAMS__API__TARGETS=http://127.0.0.1:1,http://127.0.0.1:2"}, nil, 2 * time.Second, 3 * time.Second, 4 * time.Second, 20 * time.Second, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load(config.Input{File: file, Environ: tc.env, Sets: tc.sets})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			s := c.Server
			got := []time.Duration{s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, s.ShutdownGrace}
			want := []time.Duration{tc.wantRead, tc.wantWrite, tc.wantIdle, tc.wantGrace}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("read/write/idle/grace: got %v; want %v", got, want)
				}
			}
			if n := len(c.Upstreams["api"].Targets); n != tc.wantTarget {
				t.Fatalf("targets: got %d; want %d", n, tc.wantTarget)
			}
		})
	}
}

func TestErrorsNameKeyAndSource(t *testing.T) {
	cases := []struct {
		name, file string
		env, sets  []string
		wantKey    string
		wantSource string // "FILE" stands for the file's path
		wantMsg    string
	}{
		{"unknown key in file", base + "server:\n  lisen: x\n", nil, nil, "server.lisen", "FILE", "unknown key"},
		{"unknown top-level key", base + "severs: {}\n", nil, nil, "severs", "FILE", "unknown key"},
		{"unknown key in a list item", strings.Replace(base, "keys: [k1]", "keys: [k1], plna: x", 1), nil, nil, "tenant_list[0].plna", "FILE", "unknown key"},
		{"unknown key in env", base, []string{"L1GW_SERVER__NOPE=1"}, nil, "server.nope", "env L1GW_SERVER__NOPE", "unknown key"},
		{"bad duration in a flag", base, nil, []string{"server.read_timeout=5 parsecs"}, "server.read_timeout", "--set server.read_timeout=5 parsecs", "want a duration"},
		{"bare number duration", base + "server:\n  read_timeout: 5\n", nil, nil, "server.read_timeout", "FILE", "want a duration with a unit"},
		{"bad duration in a plan", strings.Replace(base, "window: 1s", "window: soon", 1), nil, nil, "plans.free.limits[0].window", "FILE", "want a duration"},
		{"bad rule mode", strings.Replace(base, "window: 1s", "window: 1s, mode: dry-run", 1), nil, nil, "plans.free.limits[0].mode", "FILE", `got "dry-run"; want enforce or shadow`},
		{"bad quota period", strings.Replace(base, "window: 1s", "algorithm: fixed, period: year", 1), nil, nil, "plans.free.limits[0].period", "FILE", `got "year"; want day, week or month`},
		{"bad quota time zone", strings.Replace(base, "window: 1s", "algorithm: fixed, period: month, timezone: Europe/Nowhere", 1), nil, nil, "plans.free.limits[0].timezone", "FILE", "unknown time zone Europe/Nowhere"},
		{"wrong type", base + "server:\n  max_body_bytes: lots\n", nil, nil, "server.max_body_bytes", "FILE", "lots"},
		{"wrong type from env", base, []string{"L1GW_SERVER__MAX_BODY_BYTES=lots"}, nil, "server.max_body_bytes", "env L1GW_SERVER__MAX_BODY_BYTES", "lots"},
		{"unknown plan", strings.Replace(base, "plan: free", "plan: gold", 1), nil, nil, "tenant_list[0].plan", "FILE", `unknown plan "gold"`},
		{"unknown upstream in route", strings.Replace(base, "upstream: api}", "upstream: apx}", 1), nil, nil, "routes[0].upstream", "FILE", `unknown upstream "apx"`},
		{"bad target", base, []string{"L1GW_UPSTREAMS__API__TARGETS=ftp://x"}, nil, "upstreams.api.targets[0]", "env L1GW_UPSTREAMS__API__TARGETS", "http://"},
		{"bad enum", base, nil, []string{"ratelimit.fail_mode=sideways"}, "ratelimit.fail_mode", "--set ratelimit.fail_mode=sideways", `want one of`},
		{"a registry without Redis", base, []string{"L1GW_TENANTS__SOURCE=both"}, nil, "tenants.source", "env L1GW_TENANTS__SOURCE", "redis.mode is memory"},
		{"a file tenant_list with a registry alone", base, []string{"L1GW_TENANTS__SOURCE=redis", "L1GW_REDIS__MODE=standalone", "L1GW_REDIS__ADDRS=127.0.0.1:6379"}, nil, "tenant_list", "FILE", "use both"},
		{"replica consistency without Redis", base, []string{"L1GW_RATELIMIT__CONSISTENCY=replica"}, nil, "ratelimit.consistency", "env L1GW_RATELIMIT__CONSISTENCY", "needs a Redis store"},
		{"sentinel without sentinels", base, []string{"L1GW_REDIS__MODE=sentinel"}, nil, "redis.addrs", "defaults", "sentinel mode takes"},
		{"standalone with two addresses", base, nil, []string{"redis.mode=standalone", "redis.addrs=a:1,b:2"}, "redis.addrs", "--set redis.addrs=a:1,b:2", "exactly one"},
		{"same listener twice", base, nil, []string{"server.admin_listen=:8080"}, "server.admin_listen", "--set server.admin_listen=:8080", "same as server.listen"},
		{"bad --set", base, nil, []string{"novalue"}, "novalue", "--set novalue", "want --set key.path=value"},
		{"the removed trust_forwarded", base + "server:\n  trust_forwarded: true\n", nil, nil, "server.trust_forwarded", "FILE", "server.trusted_proxies"},
		{"a missing certificate", base + "server:\n  tls:\n    cert_file: /nonexistent/l1gw.pem\n    key_file: /nonexistent/l1gw.key\n", nil, nil, "server.tls.cert_file", "FILE", "/nonexistent/l1gw.pem"},
		{"an SNI certificate without its key", base + "server:\n  tls:\n    cert_file: /nonexistent/l1gw.pem\n    key_file: /k\n    sni: [{cert_file: /c}]\n", nil, nil, "server.tls.sni[0]", "FILE", "want both"},
		{"a missing upstream CA", base, []string{"L1GW_UPSTREAMS__API__TLS__CA_FILE=/nonexistent/ca.pem"}, nil, "upstreams.api.tls.ca_file", "env L1GW_UPSTREAMS__API__TLS__CA_FILE", "/nonexistent/ca.pem"},
		{"h2c tunnelled", base + "server:\n  tunnel_protocols: [websocket, H2C]\n", nil, nil, "server.tunnel_protocols[1]", "FILE", "past the gateway's limits"},
		{"a tunnel protocol with its version", base, []string{"L1GW_SERVER__TUNNEL_PROTOCOLS=websocket/13"}, nil, "server.tunnel_protocols[0]", "env L1GW_SERVER__TUNNEL_PROTOCOLS", "want a protocol name"},
		{"a bad trusted proxy", base + "server:\n  trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]\n", nil, nil, "server.trusted_proxies[1]", "FILE", "want a CIDR"},
		{"a bad shared limit", strings.Replace(base, `targets: ["http://127.0.0.1:8081"]`, `targets: ["http://127.0.0.1:8081"]`+"\n    limits: [{name: total, limit: 0, window: 1s}]", 1), nil, nil, "upstreams.api.limits[0].limit", "FILE", "want > 0"},
		{"too many shared limits", strings.Replace(base, `targets: ["http://127.0.0.1:8081"]`, `targets: ["http://127.0.0.1:8081"]`+"\n    limits: [{name: a, limit: 1, window: 1s}, {name: b, limit: 1, window: 1s}, {name: c, limit: 1, window: 1s}, {name: d, limit: 1, window: 1s}, {name: e, limit: 1, window: 1s}]", 1), nil, nil, "upstreams.api.limits", "FILE", "5 shared limits; at most 4"},
		{"route limits without a name", strings.Replace(base, "{path_prefix: /, upstream: api}", "{path_prefix: /, upstream: api, limits: [{name: total, limit: 5, window: 1s}]}", 1), nil, nil, "routes[0].name", "FILE", "required with limits or concurrency"},
		{"two routes of one name", strings.Replace(base, "  - {path_prefix: /, upstream: api}", "  - {path_prefix: /, upstream: api, name: r}\n  - {path_prefix: /x, upstream: api, name: r}", 1), nil, nil, "routes[1].name", "FILE", `"r" names routes[0] too`},
		{"a route name that is no name", strings.Replace(base, "{path_prefix: /, upstream: api}", "{path_prefix: /, upstream: api, name: \"a:b\"}", 1), nil, nil, "routes[0].name", "FILE", "want 1-64 characters"},
		{"a bad route limit", strings.Replace(base, "{path_prefix: /, upstream: api}", "{path_prefix: /, upstream: api, name: r, limits: [{name: total, limit: 5, window: 0s}]}", 1), nil, nil, "routes[0].limits[0].window", "FILE", "want at least 1ms"},
		{"a route concurrency out of range", strings.Replace(base, "{path_prefix: /, upstream: api}", "{path_prefix: /, upstream: api, name: r, concurrency: 100001}", 1), nil, nil, "routes[0].concurrency", "FILE", "want 0 (no cap) to 100000"},
		{"a route limit named as the route's concurrency limit", strings.Replace(base, "{path_prefix: /, upstream: api}", "{path_prefix: /, upstream: api, name: r, concurrency: 2, limits: [{name: route_concurrency, limit: 1, window: 1s}]}", 1), nil, nil, "routes[0].limits[0].name", "FILE", "names the route's concurrency limit"},
		{"too many route limits with concurrency", strings.Replace(base, "{path_prefix: /, upstream: api}", "{path_prefix: /, upstream: api, name: r, concurrency: 2, limits: [{name: a, limit: 1, window: 1s}, {name: b, limit: 1, window: 1s}, {name: c, limit: 1, window: 1s}, {name: d, limit: 1, window: 1s}]}", 1), nil, nil, "routes[0].limits", "FILE", "4 shared limits; at most 3"},
		{"a key query parameter that needs encoding", base + "tenants:\n  key_query: \"user key\"\n", nil, nil, "tenants.key_query", "FILE", "want a query parameter name"},
		{"a key query parameter from env", base, []string{"L1GW_TENANTS__KEY_QUERY=a&b"}, nil, "tenants.key_query", "env L1GW_TENANTS__KEY_QUERY", `got "a&b"`},
		{"refresh without a source to refresh", base + "tenants:\n  refresh: 1s\n", nil, nil, "tenants.refresh", "FILE", "tenants.source is config"},
		{"Redis settings on the memory store", base, []string{"L1GW_REDIS__PASSWORD=pw"}, nil, "redis.password", "env L1GW_REDIS__PASSWORD", "redis.mode is memory"},
		{"an admin token with a control character", base + "server:\n  admin_token: \"s3\\x01cret\"\n", nil, nil, "server.admin_token", "FILE", "control character"},
		{"a config file checked every nanosecond", base, nil, []string{"server.config_reload_interval=1ns"}, "server.config_reload_interval", "--set server.config_reload_interval=1ns", "want 0 (never check) or at least 10ms"},
		{"certificates checked every millisecond", base + "server:\n  tls:\n    reload_interval: 1ms\n", nil, nil, "server.tls.reload_interval", "FILE", "want at least 10ms"},
		{"a health check every microsecond", base, []string{"L1GW_UPSTREAMS__API__HEALTH__PATH=/healthz", "L1GW_UPSTREAMS__API__HEALTH__INTERVAL=1us"}, nil, "upstreams.api.health", "environment", "the interval is at least 10ms"},
		{"a list of objects from env", base, []string{"L1GW_TENANT_LIST__ID=demo2", "L1GW_TENANT_LIST__PLAN=free", "L1GW_TENANT_LIST__KEYS=k2"}, nil, "tenant_list", "environment", "want a list"},
		{"one item of a list from env", base, []string{"L1GW_ROUTES__0__UPSTREAM=api"}, nil, "routes", "environment", "cannot set one of its items"},
		{"a bool for an integer", strings.Replace(base, "limit: 10,", "limit: true,", 1), nil, nil, "plans.free.limits[0].limit", "FILE", "got true; want an integer"},
		{"a fraction for an integer", strings.Replace(base, "limit: 10,", "limit: 10, cost: 1.99,", 1), nil, nil, "plans.free.limits[0].cost", "FILE", "got 1.99; want an integer"},
		{"an integer past int64", base + "server:\n  max_conns: 99999999999999999999999\n", nil, nil, "server.max_conns", "FILE", "got 1e+23; want an integer"},
		{"an integer past uint64's int64", base + "server:\n  max_conns: 18446744073709551615\n", nil, nil, "server.max_conns", "FILE", "got 18446744073709551615; want an integer"},
		{"a number for a bool", base + "server:\n  pprof: 1\n", nil, nil, "server.pprof", "FILE", "got 1; want true or false"},
		{"an empty level in an env name", base, []string{"L1GW___X=1"}, nil, "L1GW___X", "env L1GW___X", "an empty level"},
		{"an env name with no key path", base, []string{"L1GW_=x"}, nil, "L1GW_", "env L1GW_", "no key path"},
		{"an empty level in --set", base, nil, []string{"server..listen=:1"}, "server..listen", "--set server..listen=:1", "an empty level"},
		{"a value and a section from env", base, []string{"L1GW_SERVER=foo", "L1GW_SERVER__LISTEN=:1"}, nil, "server", "env L1GW_SERVER", "and as a section by env L1GW_SERVER__LISTEN"},
		{"default value invalid only in combination", base + "tenants:\n  unknown: anonymous\n", nil, nil, "tenants.anonymous_plan", "defaults", `unknown plan ""`},
		{"no bits of an IPv6 caller", base + "tenants:\n  anonymous_ipv6_prefix: 0\n", nil, nil, "tenants.anonymous_ipv6_prefix", "FILE", "got 0; want 1-128"},
		// A secret's value is not quoted back, as an environment variable's is not.
		{"a password from a flag", base, nil, []string{"redis.password=LEAKME"}, "redis.password", "--set redis.password", "redis.mode is memory"},
		{"a token from a flag", base, nil, []string{"server.admin_token=a\x01LEAKME"}, "server.admin_token", "--set server.admin_token", "control character"},
		{"more bits than IPv6 has", base, []string{"L1GW_TENANTS__ANONYMOUS_IPV6_PREFIX=129"}, nil, "tenants.anonymous_ipv6_prefix", "env L1GW_TENANTS__ANONYMOUS_IPV6_PREFIX", "got 129; want 1-128"},
		{"no bits of an IPv6 peer", base, nil, []string{"server.max_conns_per_ip_ipv6_prefix=0"}, "server.max_conns_per_ip_ipv6_prefix", "--set server.max_conns_per_ip_ipv6_prefix=0", "got 0; want 1-128"},
		{"more bits than an IPv6 peer has", base + "server:\n  max_conns_per_ip_ipv6_prefix: 129\n", nil, nil, "server.max_conns_per_ip_ipv6_prefix", "FILE", "got 129; want 1-128"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, tc.file)
			_, err := config.Load(config.Input{File: file, Environ: tc.env, Sets: tc.sets})
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load: got %v; want config.Errors", err)
			}
			want := tc.wantSource
			if want == "FILE" {
				want = file
			}
			for _, e := range errs {
				if e.Key == tc.wantKey && e.Source == want && strings.Contains(e.Msg, tc.wantMsg) {
					return
				}
			}
			t.Fatalf("got errors:\n%v\nwant one with key %q, source %q, message containing %q", err, tc.wantKey, want, tc.wantMsg)
		})
	}
}

func TestEveryErrorIsListed(t *testing.T) {
	file := writeFile(t, `
server:
  listen: nowhere
  read_timeout: 5
  bogus: 1
ratelimit:
  budget: soon
  breaker: {failures: many}
plans:
  free: {limits: [{name: r, limit: 0, window: 1s}]}
tenant_list:
  - {id: "bad id", plan: gold, keys: [k]}
upstreams:
  api: {targets: []}
routes: []
`)
	_, err := config.Load(config.Input{File: file})
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load: got %v; want config.Errors", err)
	}
	seen := map[string]int{}
	for _, e := range errs {
		if seen[e.Key]++; seen[e.Key] > 1 {
			t.Errorf("%s reported twice in:\n%v", e.Key, err)
		}
	}
	if budget := fmt.Sprint(errs); !strings.Contains(budget, `ratelimit.budget: got "soon"`) {
		t.Errorf("want the budget's own decoding error, not a derived one, in:\n%v", err)
	}
	for _, key := range []string{"server.bogus", "server.listen", "server.read_timeout", "ratelimit.budget", "ratelimit.breaker.failures", "plans.free.limits[0].limit", "tenant_list[0].id", "tenant_list[0].plan", "upstreams.api.targets", "routes"} {
		found := false
		for _, e := range errs {
			found = found || e.Key == key
		}
		if !found {
			t.Errorf("no error for %s in:\n%v", key, err)
		}
	}
}

func TestFileErrors(t *testing.T) {
	_, err := config.Load(config.Input{File: filepath.Join(t.TempDir(), "missing.yaml")})
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("missing file: got %v; want an error naming it", err)
	}
	bad := writeFile(t, "server: [unclosed\n")
	_, err = config.Load(config.Input{File: bad})
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad YAML: got %v; want an error naming the file", err)
	}
}

func TestRedacted(t *testing.T) {
	c, err := config.Load(config.Input{Sets: []string{"server.admin_token=s3cret", "redis.mode=standalone",
		"redis.addrs=127.0.0.1:6379", "redis.password=pw"}})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	if r.Server.AdminToken == "s3cret" || r.Redis.Password == "pw" || r.TenantList[0].Keys[0] == "demo-key" {
		t.Fatalf("Redacted leaks: token %q password %q key %q", r.Server.AdminToken, r.Redis.Password, r.TenantList[0].Keys[0])
	}
	if c.Server.AdminToken != "s3cret" || c.TenantList[0].Keys[0] != "demo-key" {
		t.Fatal("Redacted changed the original")
	}
}

// TestCredentialFileKeys: a credential given twice, or in a file that
// does not read as one, is an error naming the key.
func TestCredentialFileKeys(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sets []string
		key  string
	}{
		{[]string{"server.admin_token=x", "server.admin_token_file=" + good}, "server.admin_token_file"},
		{[]string{"server.admin_token_file=" + filepath.Join(dir, "none")}, "server.admin_token_file"},
		{[]string{"server.admin_token_file=" + empty}, "server.admin_token_file"},
		{[]string{"redis.mode=standalone", "redis.addrs=127.0.0.1:6379", "redis.password=x", "redis.password_file=" + good}, "redis.password_file"},
		{[]string{"redis.mode=sentinel", "redis.addrs=127.0.0.1:26379", "redis.sentinel_password_file=" + empty}, "redis.sentinel_password_file"},
	} {
		_, err := config.Load(config.Input{Sets: c.sets})
		if err == nil || !strings.Contains(err.Error(), c.key+":") {
			t.Errorf("%v: %v; want an error naming %s", c.sets, err, c.key)
		}
	}
	if _, err := config.Load(config.Input{Sets: []string{"server.admin_token_file=" + good}}); err != nil {
		t.Errorf("a token file: %v", err)
	}
}

func TestQuotaRuleLoads(t *testing.T) {
	file := writeFile(t, strings.Replace(base, "{name: per_second, limit: 10, window: 1s}",
		"{name: per_second, limit: 10, window: 1s, algorithm: sliding_window}\n      - {name: monthly, limit: 1000000, algorithm: fixed, period: month, anchor: 15, timezone: Europe/Berlin}", 1))
	c, err := config.Load(config.Input{File: file})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got := c.Plans["free"].Limits
	want := []limiter.Rule{{Name: "per_second", Limit: 10, Window: time.Second, Algorithm: limiter.AlgoSlidingWindow},
		{Name: "monthly", Limit: 1_000_000, Algorithm: limiter.AlgoFixed, Period: limiter.PeriodMonth, Anchor: 15, Timezone: "Europe/Berlin"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("plans.free.limits: got %+v; want %+v", got, want)
	}
}

// TestSharedLimitOnClusterLoads: Redis Cluster decides shared limits, an
// upstream's and a route's (a call of their own: limiter/split.go), so
// the config takes them.
func TestSharedLimitOnClusterLoads(t *testing.T) {
	body := strings.Replace(base, `targets: ["http://127.0.0.1:8081"]`, `targets: ["http://127.0.0.1:8081"]`+"\n    limits: [{name: total, limit: 5, window: 1s}]", 1)
	body = strings.Replace(body, "{path_prefix: /, upstream: api}", "{path_prefix: /, upstream: api, name: r, concurrency: 2, limits: [{name: a, limit: 1, window: 1s}]}", 1)
	c, err := config.Load(config.Input{File: writeFile(t, body), Sets: []string{"redis.mode=cluster", "redis.addrs=127.0.0.1:7000"}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := c.Upstreams["api"].Limits; len(got) != 1 || got[0].Name != "total" {
		t.Fatalf("upstreams.api.limits: got %+v; want the one shared limit", got)
	}
	if got := c.Routes[0]; len(got.Limits) != 1 || got.Concurrency != 2 {
		t.Fatalf("routes[0]: got %+v; want its limit and concurrency", got)
	}
}

// TestUpstreamNameWithDots: an upstream may be named api.v1 (ValidName
// allows dots): it gets the upstream defaults under its own name, not
// under "api".
func TestUpstreamNameWithDots(t *testing.T) {
	body := strings.ReplaceAll(base, "api", "api.v1")
	cfg, err := config.Load(config.Input{File: writeFile(t, body)})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Upstreams) != 1 {
		t.Fatalf("upstreams %v; want api.v1 alone", cfg.Upstreams)
	}
	u, ok := cfg.Upstreams["api.v1"]
	if !ok || u.Timeout <= 0 || len(u.Targets) != 1 {
		t.Fatalf("upstreams[api.v1] = %+v, %v; want its target and the default timeout", u, ok)
	}
}

// TestEnvIgnoresKubernetesServiceLinks: the variables Kubernetes sets for
// the Services l1gw and l1gw-admin in the gateway's namespace are not
// keys (they stopped the gateway from starting); a real key beside them
// is read, and a near miss is still an unknown key.
func TestEnvIgnoresKubernetesServiceLinks(t *testing.T) {
	links := []string{
		"L1GW_SERVICE_HOST=10.0.0.11", "L1GW_SERVICE_PORT=8080", "L1GW_SERVICE_PORT_PROXY=8080", "L1GW_PORT=tcp://10.0.0.11:8080",
		"L1GW_PORT_8080_TCP=tcp://10.0.0.11:8080", "L1GW_PORT_8080_TCP_PROTO=tcp", "L1GW_PORT_8080_TCP_PORT=8080", "L1GW_PORT_8080_TCP_ADDR=10.0.0.11",
		"L1GW_ADMIN_SERVICE_HOST=10.0.0.12", "L1GW_ADMIN_SERVICE_PORT_ADMIN=9090", "L1GW_ADMIN_PORT_9090_TCP_ADDR=10.0.0.12",
	}
	file := writeFile(t, base)
	cfg, err := config.Load(config.Input{File: file, Environ: append(links, "L1GW_SERVER__READ_TIMEOUT=3s")})
	if err != nil {
		t.Fatalf("Load with service links: %v", err)
	}
	if cfg.Server.ReadTimeout != 3*time.Second {
		t.Errorf("server.read_timeout %s; want 3s from the environment", cfg.Server.ReadTimeout)
	}
	for _, near := range []string{"L1GW_SERVICE_HOSTS=x", "L1GW_PORT_X_TCP=x", "L1GW_SERVER__SERVICE_HOST=x"} {
		if _, err := config.Load(config.Input{File: file, Environ: []string{near}}); err == nil || !strings.Contains(err.Error(), "unknown key") {
			t.Errorf("Load with %s: %v; want an unknown key", near, err)
		}
	}
}

// TestAdminTokenIsTrimmed: a token from a Secret ending in a newline, as
// an environment variable often has it, is taken without it, as
// admin_token_file's is.
func TestAdminTokenIsTrimmed(t *testing.T) {
	cfg, err := config.Load(config.Input{File: writeFile(t, base), Environ: []string{"L1GW_SERVER__ADMIN_TOKEN= s3cret\n"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.AdminToken != "s3cret" {
		t.Errorf("admin_token %q; want s3cret", cfg.Server.AdminToken)
	}
}

// TestOneObjectForAListInTheFile: the file's `routes: {…}` without a
// dash is still a list of one, as it always was; only the environment and
// --set may not set an item of a list.
func TestOneObjectForAListInTheFile(t *testing.T) {
	body := strings.Replace(base, "routes:\n  - {path_prefix: /, upstream: api}", "routes: {path_prefix: /, upstream: api}", 1)
	if body == base {
		t.Fatal("the base config changed: fix the test")
	}
	cfg, err := config.Load(config.Input{File: writeFile(t, body)})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 1 || cfg.Routes[0].Upstream != "api" {
		t.Errorf("routes %+v; want the one route", cfg.Routes)
	}
}

// TestEnvSetsANameWithCapitals: an environment variable's path is read in
// lower case, so L1GW_UPSTREAMS__API__TIMEOUT named upstreams.api, a new
// upstream without targets, beside the file's API; each level now takes
// the file's spelling when only case tells them apart. A name that two
// of the file's match without case stays as it is.
func TestEnvSetsANameWithCapitals(t *testing.T) {
	body := strings.NewReplacer("  api:", "  API:", "upstream: api", "upstream: API", "  free:", "  Free:", "plan: free", "plan: Free").Replace(base)
	cfg, err := config.Load(config.Input{File: writeFile(t, body), Environ: []string{
		"L1GW_UPSTREAMS__API__TIMEOUT=7s", "L1GW_PLANS__FREE__CONCURRENCY=3", "L1GW_SERVER__READ_TIMEOUT=2s",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := cfg.Upstreams["API"]; !ok || u.Timeout != 7*time.Second || len(cfg.Upstreams) != 1 {
		t.Errorf("upstreams %v; want API alone, its timeout 7s from the environment", cfg.Upstreams)
	}
	if p, ok := cfg.Plans["Free"]; !ok || p.Concurrency != 3 || len(cfg.Plans) != 1 {
		t.Errorf("plans %v; want Free alone, its concurrency 3 from the environment", cfg.Plans)
	}
	if cfg.Server.ReadTimeout != 2*time.Second {
		t.Errorf("server.read_timeout %s; want 2s", cfg.Server.ReadTimeout)
	}

	_, err = config.Load(config.Input{File: writeFile(t, body), Environ: []string{"L1GW_UPSTREAMS__API__TIMEOUT=soon"}})
	if err == nil || !strings.Contains(err.Error(), "upstreams.API.timeout") || !strings.Contains(err.Error(), "env L1GW_UPSTREAMS__API__TIMEOUT") {
		t.Errorf("a bad value for API's timeout: %v; want an error naming upstreams.API.timeout and the variable", err)
	}

	two := strings.Replace(body, "  API:\n", "  Api:\n    targets: [\"http://127.0.0.1:8082\"]\n  API:\n", 1)
	_, err = config.Load(config.Input{File: writeFile(t, two), Environ: []string{"L1GW_UPSTREAMS__API__TIMEOUT=7s"}})
	if err == nil || !strings.Contains(err.Error(), "upstreams.api") {
		t.Errorf("API and Api in the file: %v; want upstreams.api left as the variable spells it (no targets)", err)
	}
}

// TestABrokenPlanOrUpstreamIsNotAlsoUnknown: a plan or an upstream whose
// value fails to decode is missing from the decoded config, and what
// names it was reported as naming an unknown one as well. The decoding
// error is the one to see; a name nothing defines is still unknown.
func TestABrokenPlanOrUpstreamIsNotAlsoUnknown(t *testing.T) {
	file := writeFile(t, base+"  - {path_prefix: /gold, upstream: gold}\n")
	for _, tc := range []struct {
		env  string
		want []string // every error's key
	}{
		{"L1GW_PLANS__FREE__CONCURRENCY=abc", []string{"plans.free.concurrency", "routes[1].upstream"}},
		{"L1GW_UPSTREAMS__API__TIMEOUT=soon", []string{"routes[1].upstream", "upstreams.api.timeout"}},
	} {
		_, err := config.Load(config.Input{File: file, Environ: []string{tc.env}})
		var errs config.Errors
		if !errors.As(err, &errs) {
			t.Fatalf("%s: %v; want config.Errors", tc.env, err)
		}
		var keys []string
		for _, e := range errs {
			keys = append(keys, e.Key)
		}
		if fmt.Sprint(keys) != fmt.Sprint(tc.want) {
			t.Errorf("%s: errors at %v; want %v (the decoding error, and gold still unknown):\n%v", tc.env, keys, tc.want, err)
		}
	}
}

// cfgBase is base without its upstreams: a case appends cfgUpstream, and
// then to the upstream, or an upstream of its own.
const cfgBase = cfgPlans + cfgRoutes

const cfgUpstream = `upstreams:
  api:
    targets: ["http://127.0.0.1:8081"]
`

// mustRefuse fails unless Load refuses the config with an error naming key.
func mustRefuse(t *testing.T, in config.Input, key string) {
	t.Helper()
	_, err := config.Load(in)
	if err == nil {
		t.Errorf("%v %v: accepted; want an error naming %s", in.Environ, in.Sets, key)
	} else if !strings.Contains(err.Error(), key+":") {
		t.Errorf("error %q; want it to name %s", err, key)
	}
}

// TestNullOrEmptyIsRefused: a YAML null, or an empty environment / --set value, is read as false
// or 0 for a switch or a number, whatever the key's default: hide_key went
// from true to false (the API key forwarded to the upstream), and an empty
// section turned the health checks and passive ejection off. Each is
// refused, naming the key (a review).
func TestNullOrEmptyIsRefused(t *testing.T) {
	cases := []struct {
		name, body string
		env, sets  []string
		key        string
	}{
		{"yaml null hide_key", cfgBase + cfgUpstream + "tenants:\n  hide_key:\n", nil, nil, "tenants.hide_key"},
		{"yaml ~ hide_key", cfgBase + cfgUpstream + "tenants:\n  hide_key: ~\n", nil, nil, "tenants.hide_key"},
		{"env empty hide_key", cfgBase + cfgUpstream, []string{"L1GW_TENANTS__HIDE_KEY="}, nil, "tenants.hide_key"},
		{"--set empty hide_key", cfgBase + cfgUpstream, nil, []string{"tenants.hide_key="}, "tenants.hide_key"},
		{"env empty metrics_max", cfgBase + cfgUpstream, []string{"L1GW_TENANTS__METRICS_MAX="}, nil, "tenants.metrics_max"},
		{"yaml null health", cfgBase + cfgUpstream + "    health:\n", nil, nil, "upstreams.api.health"},
		{"yaml null eject", cfgBase + cfgUpstream + "    eject:\n", nil, nil, "upstreams.api.eject"},
		{"yaml null in a list", cfgBase + "upstreams:\n  api:\n    targets: [~]\n", nil, nil, "upstreams.api.targets[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustRefuse(t, config.Input{File: writeFile(t, tc.body), Environ: tc.env, Sets: tc.sets}, tc.key)
		})
	}
}

// TestIntegersAreDecimal: YAML and weak typing read 010 as 8 and 0x10 as
// 16, in the file and in the environment; an integer is written in decimal,
// or refused (a review).
func TestIntegersAreDecimal(t *testing.T) {
	for _, n := range []string{"010", "0x10", "0o10", "1_0"} {
		body := strings.Replace(cfgBase, "limit: 10,", "limit: "+n+",", 1) + cfgUpstream
		mustRefuse(t, config.Input{File: writeFile(t, body)}, "plans.free.limits[0].limit")
	}
	c, err := config.Load(config.Input{File: writeFile(t, cfgBase+cfgUpstream), Environ: []string{"L1GW_SERVER__MAX_CONNS=010"}})
	if err != nil || c.Server.MaxConns != 10 {
		t.Errorf("L1GW_SERVER__MAX_CONNS=010: %v, %v; want 10", c, err)
	}
	mustRefuse(t, config.Input{File: writeFile(t, cfgBase+cfgUpstream), Environ: []string{"L1GW_SERVER__MAX_CONNS=0x10"}}, "server.max_conns")
	// 0800123 is no octal: YAML read it as the number 800123, and a key
	// so written lost its zero (a review).
	mustRefuse(t, config.Input{File: writeFile(t, strings.Replace(base, "keys: [k1]", "keys: [0800123]", 1))}, "tenant_list[0].keys[0]")
	mustRefuse(t, config.Input{File: writeFile(t, base+"server:\n  max_conns: 0109\n")}, "server.max_conns")
}

// TestRoutesThatCanNeverMatchAreRefused: a tenant route whose method or
// prefix no request can have, and a gateway route whose host has a port
// or whose prefix has no leading slash, were accepted, and their limits
// never applied (a review).
func TestRoutesThatCanNeverMatchAreRefused(t *testing.T) {
	tenantRoute := func(r string) string {
		return `
plans:
  free:
    limits:
      - {name: per_second, limit: 10, window: 1s}
routes:
  - {path_prefix: /, upstream: api}
tenant_list:
  - id: acme
    plan: free
    keys: [k1]
    routes:
      - ` + r + "\n" + cfgUpstream
	}
	// gatewayRoute is base with r as its first route.
	gatewayRoute := func(r string) string {
		return strings.Replace(base, "routes:\n", "routes:\n  - "+r+"\n", 1)
	}
	cases := []struct{ name, body, key string }{
		{"method with a space", tenantRoute(`{methods: ["POST "], path_prefix: /v1/expensive, limits: [{name: e, limit: 2, window: 10s}]}`), "tenant_list[0].routes[0].methods[0]"},
		{"method not a token", tenantRoute(`{methods: ["PO ST"], path_prefix: /v1/expensive, limits: [{name: e, limit: 2, window: 10s}]}`), "tenant_list[0].routes[0].methods[0]"},
		{"prefix without slash", tenantRoute(`{path_prefix: v1/expensive, limits: [{name: e, limit: 2, window: 10s}]}`), "tenant_list[0].routes[0].path_prefix"},
		{"gateway host with port", gatewayRoute(`{host: "api.example.com:8443", path_prefix: /, upstream: api, name: r, limits: [{name: s, limit: 5, window: 1s}]}`), "routes[0].host"},
		{"gateway prefix without slash", gatewayRoute(`{path_prefix: v1, upstream: api, name: r, limits: [{name: s, limit: 5, window: 1s}]}`), "routes[0].path_prefix"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustRefuse(t, config.Input{File: writeFile(t, tc.body)}, tc.key)
		})
	}
}

// TestHealthPathNeedsSlash: a health path without its leading slash made
// the check's URL http://host:porthealthz: the target was asked for / with
// a wrong Host, and the path never checked (a review).
func TestHealthPathNeedsSlash(t *testing.T) {
	mustRefuse(t, config.Input{File: writeFile(t, cfgBase+cfgUpstream+"    health: {path: healthz}\n")}, "upstreams.api.health.path")
}

// TestLeaseTTLFloor: a lease TTL below what the stores compute with (µs
// to Redis, ms to PEXPIRE) was accepted: 1ns is 0 µs, and every lease was
// gone at once (a review).
func TestLeaseTTLFloor(t *testing.T) {
	body := `
plans:
  free:
    concurrency: 1
    limits:
      - {name: per_second, limit: 10, window: 1s}
tenant_list:
  - {id: acme, plan: free, keys: [k1]}
routes:
  - {path_prefix: /, upstream: api}
tenants:
  lease_ttl: 1ns
` + cfgUpstream
	mustRefuse(t, config.Input{File: writeFile(t, body)}, "tenants.lease_ttl")
}

// TestTimezoneLocalIsRefused: Local is not an IANA name: each gateway's
// own TZ would place a quota's periods (a review).
func TestTimezoneLocalIsRefused(t *testing.T) {
	body := `
plans:
  free:
    limits:
      - {name: daily, limit: 5, algorithm: fixed, period: day, timezone: Local}
tenant_list:
  - {id: acme, plan: free, keys: [k1]}
routes:
  - {path_prefix: /, upstream: api}
` + cfgUpstream
	mustRefuse(t, config.Input{File: writeFile(t, body)}, "plans.free.limits[0].timezone")
}

// TestTargetPortInRange: a target's port past 65535 was accepted (a
// review).
func TestTargetPortInRange(t *testing.T) {
	mustRefuse(t, config.Input{File: writeFile(t, cfgBase+"upstreams:\n  api:\n    targets: [\"http://127.0.0.1:99999\"]\n")}, "upstreams.api.targets[0]")
}

// TestListenAddresses: a port past 65535 was accepted, and the admin API
// on 0.0.0.0:8080 beside the proxy on :8080 was not seen as the same port
// (a review).
func TestListenAddresses(t *testing.T) {
	file := writeFile(t, cfgBase+cfgUpstream)
	mustRefuse(t, config.Input{File: file, Sets: []string{"server.listen=:99999"}}, "server.listen")
	for _, pair := range [][2]string{{":8080", "0.0.0.0:8080"}, {"127.0.0.1:8080", ":8080"}, {"[::]:8080", "127.0.0.1:8080"},
		{":8080", ":08080"}, {"[::0]:8080", "127.0.0.1:8080"}} {
		mustRefuse(t, config.Input{File: file, Sets: []string{"server.listen=" + pair[0], "server.admin_listen=" + pair[1]}}, "server.admin_listen")
	}
	// A service name and an empty port are Go's to resolve, as they were.
	for _, pair := range [][2]string{{"127.0.0.1:8080", "127.0.0.2:8080"}, {":0", ":0"}, {":8080", ":9090"}, {":http", ":9090"}, {"127.0.0.1:", ":9090"}} {
		if _, err := config.Load(config.Input{File: file, Sets: []string{"server.listen=" + pair[0], "server.admin_listen=" + pair[1]}}); err != nil {
			t.Errorf("listen %s, admin_listen %s: %v; want accepted", pair[0], pair[1], err)
		}
	}
}

// TestCostAboveLimit: a rule whose cost is above its limit could never
// admit a request, and every 429 said to retry after the window (a
// review).
func TestCostAboveLimit(t *testing.T) {
	body := strings.Replace(cfgBase, "limit: 10, window: 1s}", "limit: 5, window: 1s, cost: 10}", 1) + cfgUpstream
	mustRefuse(t, config.Input{File: writeFile(t, body)}, "plans.free.limits[0].cost")
}

// TestAMisspeltUpstreamNamesItsVariable: an environment variable naming
// an upstream the file does not have made one, and its error blamed the
// defaults ("upstreams.apii.targets: no targets (from defaults)"): it
// names the variable (a review).
func TestAMisspeltUpstreamNamesItsVariable(t *testing.T) {
	_, err := config.Load(config.Input{File: writeFile(t, cfgBase+cfgUpstream), Environ: []string{"L1GW_UPSTREAMS__APII__TIMEOUT=5s"}})
	if err == nil || !strings.Contains(err.Error(), "upstreams.apii.targets") || !strings.Contains(err.Error(), "env L1GW_UPSTREAMS__APII__TIMEOUT") {
		t.Errorf("error %v; want upstreams.apii.targets, from env L1GW_UPSTREAMS__APII__TIMEOUT", err)
	}
}

// TestTimezoneLocaltimeIsRefused: Debian's zoneinfo has localtime, a link
// to /etc/localtime: each gateway's own zone, as Local is (a review).
func TestTimezoneLocaltimeIsRefused(t *testing.T) {
	body := strings.Replace(base, "      - {name: per_second, limit: 10, window: 1s}", "      - {name: daily, limit: 5, algorithm: fixed, period: day, timezone: localtime}", 1)
	mustRefuse(t, config.Input{File: writeFile(t, body)}, "plans.free.limits[0].timezone")
}

// TestRouteHostIPv6Literal: a request's Host may be an IPv6 literal, which
// Match keeps in brackets; a route for one is accepted, one with a port is
// not (a review).
func TestRouteHostIPv6Literal(t *testing.T) {
	route := func(h string) string {
		return strings.Replace(base, "routes:\n", "routes:\n  - {host: \""+h+"\", path_prefix: /, upstream: api}\n", 1)
	}
	if _, err := config.Load(config.Input{File: writeFile(t, route("[2001:db8::1]"))}); err != nil {
		t.Errorf("host [2001:db8::1]: %v; want accepted", err)
	}
	for _, h := range []string{"[2001:db8::1]:8443", "2001:db8::1", "[10.0.0.1]", "[nope]"} {
		mustRefuse(t, config.Input{File: writeFile(t, route(h))}, "routes[0].host")
	}
}
