package tenants_test

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

var plans = map[string]tenants.Plan{
	"free": {Limits: []limiter.Rule{
		{Name: "per_second", Limit: 10, Window: time.Second},
		{Name: "per_minute", Limit: 300, Window: time.Minute},
	}},
}

func opts() tenants.Options {
	return tenants.Options{KeyHeader: "X-API-Key", Unknown: tenants.UnknownReject}
}

func anyUpstream(string) bool { return true }

func build(t *testing.T, o tenants.Options, specs ...tenants.Spec) *tenants.Snapshot {
	t.Helper()
	s, err := tenants.Build(o, plans, specs, anyUpstream)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return s
}

func ruleNames(rules []limiter.Rule) string {
	var names []string
	for _, r := range rules {
		names = append(names, r.Name+"="+r.Window.String())
	}
	return strings.Join(names, ",")
}

func TestResolve(t *testing.T) {
	s := build(t, opts(),
		tenants.Spec{ID: "acme", Plan: "free", Keys: []string{"k1"}, KeyHashes: []string{tenants.HashKey("k2")}},
		tenants.Spec{ID: "beta", Plan: "free", Keys: []string{"k3"}},
	)
	cases := []struct {
		name, key, wantID string
		want              tenants.Resolution
	}{
		{"plain key", "k1", "acme", tenants.Resolved},
		{"hashed key", "k2", "acme", tenants.Resolved},
		{"other tenant", "k3", "beta", tenants.Resolved},
		{"unknown key", "nope", "", tenants.UnknownKey},
		{"no key", "", "", tenants.MissingKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tn, res := s.Resolve([]byte(tc.key))
			if res != tc.want {
				t.Fatalf("resolution: got %v; want %v", res, tc.want)
			}
			if got := ""; tn != nil {
				got = tn.ID
				if got != tc.wantID {
					t.Fatalf("tenant: got %q; want %q", got, tc.wantID)
				}
			} else if tc.wantID != "" {
				t.Fatalf("tenant: got nil; want %q", tc.wantID)
			}
		})
	}
}

func TestResolveAnonymous(t *testing.T) {
	o := opts()
	o.Unknown, o.AnonymousPlan = tenants.UnknownAnonymous, "free"
	s := build(t, o, tenants.Spec{ID: "acme", Plan: "free", Keys: []string{"k1"}})
	for _, key := range []string{"", "nope"} {
		tn, res := s.Resolve([]byte(key))
		if res != tenants.AnonymousCaller || tn == nil || !tn.Anonymous() {
			t.Fatalf("key %q: got %v %v; want the anonymous tenant", key, tn, res)
		}
	}
}

// TestAnonymousKey: an anonymous IPv6 caller is counted by its network,
// so rotating through the addresses of its /64 gets it no fresh count; an
// IPv4 caller, mapped or not, by its address.
func TestAnonymousKey(t *testing.T) {
	cases := []struct {
		bits int // tenants.anonymous_ipv6_prefix; 0 is the default
		addr string
		want string
	}{
		{0, "203.0.113.9", "anon:203.0.113.9"},
		{0, "::ffff:203.0.113.9", "anon:203.0.113.9"},
		{0, "2001:db8:1:2::a", "anon:2001:db8:1:2::/64"},
		{0, "2001:db8:1:2:ffff:ffff:ffff:ffff", "anon:2001:db8:1:2::/64"},
		{0, "2001:db8:1:3::a", "anon:2001:db8:1:3::/64"},
		{0, "fe80::1%eth0", "anon:fe80::/64"},
		{48, "2001:db8:1:2::a", "anon:2001:db8:1::/48"},
		{128, "2001:db8:1:2::a", "anon:2001:db8:1:2::a"},
		{128, "fe80::1%eth0", "anon:fe80::1"},
		{56, "203.0.113.9", "anon:203.0.113.9"},
		{0, "", "anon:unknown"},
	}
	for _, tc := range cases {
		o := opts()
		o.Unknown, o.AnonymousPlan, o.AnonymousIPv6Prefix = tenants.UnknownAnonymous, "free", tc.bits
		tn, _ := build(t, o).Resolve(nil)
		var a netip.Addr
		if tc.addr != "" {
			a = netip.MustParseAddr(tc.addr)
		}
		if got := tn.AnonymousKey(a); got != tc.want {
			t.Errorf("/%d, %s: got %q; want %q", tc.bits, tc.addr, got, tc.want)
		}
	}
}

func TestAnonymousIPv6PrefixOutOfRange(t *testing.T) {
	for _, bits := range []int{-1, 129} {
		o := opts()
		o.Unknown, o.AnonymousPlan, o.AnonymousIPv6Prefix = tenants.UnknownAnonymous, "free", bits
		_, err := tenants.Build(o, plans, nil, anyUpstream)
		if err == nil || !strings.Contains(err.Error(), "tenants.anonymous_ipv6_prefix") {
			t.Errorf("/%d: got %v; want an error naming tenants.anonymous_ipv6_prefix", bits, err)
		}
	}
}

func TestKeyFrom(t *testing.T) {
	cases := []struct{ header, auth, want string }{
		{"abc", "", "abc"},
		{"abc", "Bearer xyz", "abc"},
		{"", "Bearer xyz", "xyz"},
		{"", "bearer  xyz ", "xyz"},
		{"", "Basic xyz", ""},
		{"", "Bearer ", ""},
		{"", "", ""},
	}
	for _, tc := range cases {
		if got := string(tenants.KeyFrom([]byte(tc.header), []byte(tc.auth))); got != tc.want {
			t.Errorf("KeyFrom(%q, %q): got %q; want %q", tc.header, tc.auth, got, tc.want)
		}
	}
}

func TestRulesByRoute(t *testing.T) {
	s := build(t, opts(), tenants.Spec{
		ID: "acme", Plan: "free", Keys: []string{"k"},
		Limits: []limiter.Rule{{Name: "per_second", Limit: 50, Window: 2 * time.Second}, {Name: "daily", Limit: 1000, Window: 24 * time.Hour}},
		Routes: []tenants.RouteSpec{
			{Methods: []string{"post"}, PathPrefix: "/v1/expensive", Limits: []limiter.Rule{{Name: "expensive", Limit: 2, Window: time.Second}}},
			{PathPrefix: "/v1/expensive/very", Limits: []limiter.Rule{{Name: "very", Limit: 1, Window: time.Second}}},
			{PathPrefix: "/v2/Report", CaseInsensitive: true, Limits: []limiter.Rule{{Name: "report", Limit: 1, Window: time.Second}}},
			// At one prefix the routes are tried as written: one for some
			// methods, then one for all; a case-sensitive one, then one in
			// any case.
			{Methods: []string{"GET"}, PathPrefix: "/v3", Limits: []limiter.Rule{{Name: "v3_get", Limit: 3, Window: time.Second}}},
			{PathPrefix: "/v3", Limits: []limiter.Rule{{Name: "v3_any", Limit: 9, Window: time.Second}}},
			{PathPrefix: "/v4", Limits: []limiter.Rule{{Name: "v4_exact", Limit: 3, Window: time.Second}}},
			{PathPrefix: "/v4", CaseInsensitive: true, Limits: []limiter.Rule{{Name: "v4_fold", Limit: 9, Window: time.Second}}},
		},
	})
	tn, _ := s.ByID("acme")
	base := "per_minute=1m0s,per_second=2s,daily=24h0m0s"
	cases := []struct{ method, path, want string }{
		{"GET", "/", base},
		{"GET", "/v1/expensive", base},
		{"POST", "/v1/expensive/x", base + ",expensive=1s"},
		{"GET", "/v1/expensive/very/1", base + ",very=1s"},
		{"POST", "/v1/cheap", base},
		{"POST", "/V1/expensive/x", base}, // case-sensitive by default
		{"post", "/v1/expensive/x", base}, // methods too (RFC 9110); the gateway refuses "post"
		{"GET", "/V2/REPORT/7", base + ",report=1s"},
		{"GET", "/v2/report", base + ",report=1s"},
		{"GET", "/v2/repo", base},
		{"GET", "/v3/x", base + ",v3_get=1s"},
		{"HEAD", "/v3/x", base + ",v3_get=1s"}, // a HEAD runs the GET's handler
		{"POST", "/v3/x", base + ",v3_any=1s"},
		{"GET", "/v4/x", base + ",v4_exact=1s"},
		{"GET", "/V4/x", base + ",v4_fold=1s"},
	}
	for _, tc := range cases {
		if got := ruleNames(tn.Rules([]byte(tc.method), []byte(tc.path))); got != tc.want {
			t.Errorf("%s %s: got %s; want %s", tc.method, tc.path, got, tc.want)
		}
	}
}

// TestHeadIsAGetUnlessNamed: a route for GET takes HEAD too, so a HEAD
// does not walk around the GET's limit; a tenant whose routes name HEAD
// themselves keeps HEAD where it put it.
func TestHeadIsAGetUnlessNamed(t *testing.T) {
	s := build(t, opts(), tenants.Spec{ID: "a", Plan: "free", Keys: []string{"k"},
		Routes: []tenants.RouteSpec{{Methods: []string{"GET"}, PathPrefix: "/r", Limits: []limiter.Rule{{Name: "r_get", Limit: 1, Window: time.Second}}}}},
		tenants.Spec{ID: "b", Plan: "free", Keys: []string{"j"}, Routes: []tenants.RouteSpec{
			{Methods: []string{"GET"}, PathPrefix: "/r", Limits: []limiter.Rule{{Name: "r_get", Limit: 1, Window: time.Second}}},
			{Methods: []string{"head"}, PathPrefix: "/r", Limits: []limiter.Rule{{Name: "r_head", Limit: 9, Window: time.Second}}},
			// A HEAD route elsewhere leaves /s's GET route taking HEAD.
			{Methods: []string{"GET"}, PathPrefix: "/s", Limits: []limiter.Rule{{Name: "s_get", Limit: 1, Window: time.Second}}},
		}})
	a, _ := s.ByID("a")
	b, _ := s.ByID("b")
	base := "per_second=1s,per_minute=1m0s"
	for _, tc := range []struct {
		tn           *tenants.Tenant
		method, want string
	}{
		{a, "GET", base + ",r_get=1s"},
		{a, "HEAD", base + ",r_get=1s"},
		{a, "POST", base},
		{b, "GET", base + ",r_get=1s"},
		{b, "HEAD", base + ",r_head=1s"},
	} {
		if got := ruleNames(tc.tn.Rules([]byte(tc.method), []byte("/r/1"))); got != tc.want {
			t.Errorf("%s %s /r/1: got %s; want %s", tc.tn.ID, tc.method, got, tc.want)
		}
	}
	if got := ruleNames(b.Rules([]byte("HEAD"), []byte("/s/1"))); got != base+",s_get=1s" {
		t.Errorf("b HEAD /s/1: got %s; want %s", got, base+",s_get=1s")
	}
}

func TestBuildErrors(t *testing.T) {
	noUpstream := func(string) bool { return false }
	cases := []struct {
		name  string
		o     func(*tenants.Options)
		specs []tenants.Spec
		want  []string
	}{
		{"unknown plan", nil, []tenants.Spec{{ID: "a", Plan: "gold", Keys: []string{"k"}}}, []string{`tenant_list[0].plan: unknown plan "gold"`}},
		{"bad id", nil, []tenants.Spec{{ID: "a b", Plan: "free", Keys: []string{"k"}}}, []string{`tenant_list[0].id: got "a b"`}},
		{"reserved id", nil, []tenants.Spec{{ID: "anonymous", Plan: "free", Keys: []string{"k"}}}, []string{`tenant_list[0].id: "anonymous" is reserved`}},
		{"duplicate id", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}}, {ID: "a", Plan: "free", Keys: []string{"j"}}}, []string{`tenant_list[1].id: tenant "a" is defined twice`}},
		{"shared key", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}}, {ID: "b", Plan: "free", KeyHashes: []string{tenants.HashKey("k")}}}, []string{`tenant_list[1].key_hashes[0]: this key also belongs to tenant "a"`}},
		{"no keys", nil, []tenants.Spec{{ID: "a", Plan: "free"}}, []string{`tenant_list[0]: tenant "a" has no keys`}},
		{"key outside ASCII", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k\u00a0"}}}, []string{`tenant_list[0].keys[0]: a key must be ASCII`}},
		{"key with a space", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"spaced key"}}}, []string{`tenant_list[0].keys[0]: a key must not hold white space`}},
		{"key with a tab", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k", "t\tk"}}}, []string{`tenant_list[0].keys[1]: a key must not hold white space`}},
		{"bad hash", nil, []tenants.Spec{{ID: "a", Plan: "free", KeyHashes: []string{"md5:00"}}}, []string{`tenant_list[0].key_hashes[0]: want sha256:<64 lower-case hex digits>`}},
		{"a window past a year", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Limits: []limiter.Rule{{Name: "x", Limit: 1, Window: 2562047 * time.Hour}}}}, []string{`tenant_list[0].limits[0].window: got 2562047h0m0s; want at most 8784h0m0s`}},
		{"upper-case hash", nil, []tenants.Spec{{ID: "a", Plan: "free", KeyHashes: []string{"sha256:" + strings.Repeat("AB", 32)}}}, []string{`tenant_list[0].key_hashes[0]: want sha256:<64 lower-case hex digits>`}},
		{"plain key as a hash is not echoed", nil, []tenants.Spec{{ID: "a", Plan: "free", KeyHashes: []string{"sk-live-secret"}}}, []string{`tenant_list[0].key_hashes[0]: want sha256:`}},
		{"unknown upstream", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Upstream: "nope"}}, []string{`tenant_list[0].upstream: unknown upstream "nope"`}},
		{"bad rule", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Limits: []limiter.Rule{{Name: "x", Limit: 0, Window: 0}, {Name: "x", Limit: 1, Window: time.Second, Cost: -1}}}},
			[]string{"tenant_list[0].limits[0].limit: got 0", "tenant_list[0].limits[0].window: got 0s", `tenant_list[0].limits[1].name: rule "x" is defined twice`, "tenant_list[0].limits[1].cost"}},
		{"a cost past what Redis counts exactly, and a log's cost past a member per unit", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Limits: []limiter.Rule{
			{Name: "costly", Limit: 1 << 62, Window: time.Second, Cost: 1<<53 + 1, Algorithm: "sliding_window"},
			{Name: "log", Limit: 300_000, Window: time.Minute, Cost: 300_000},
		}}},
			[]string{"tenant_list[0].limits[0].cost: got 9007199254740993; want 1 to 9007199254740992",
				"tenant_list[0].limits[1].cost: got 300000; a sliding_log rule's cost is at most 1000"}},
		{"a route an earlier one shadows", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Routes: []tenants.RouteSpec{
			{Methods: []string{"GET", "POST"}, PathPrefix: "/a", Limits: []limiter.Rule{{Name: "x", Limit: 1, Window: time.Second}}},
			{Methods: []string{"post"}, PathPrefix: "/a", Limits: []limiter.Rule{{Name: "y", Limit: 1, Window: time.Second}}},
			{PathPrefix: "/b", CaseInsensitive: true, Limits: []limiter.Rule{{Name: "z", Limit: 1, Window: time.Second}}},
			{PathPrefix: "/B", Limits: []limiter.Rule{{Name: "w", Limit: 1, Window: time.Second}}},
			{PathPrefix: "/c", Limits: []limiter.Rule{{Name: "v", Limit: 1, Window: time.Second}}},
			{Methods: []string{"GET"}, PathPrefix: "/c", Limits: []limiter.Rule{{Name: "u", Limit: 1, Window: time.Second}}}}}},
			[]string{"tenant_list[0].routes[1]: can never apply: tenant_list[0].routes[0], written before it",
				"tenant_list[0].routes[3]: can never apply: tenant_list[0].routes[2]", "tenant_list[0].routes[5]: can never apply: tenant_list[0].routes[4]"}},
		{"reserved rule names", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Limits: []limiter.Rule{
			{Name: "lease", Limit: 1, Window: time.Second, Algorithm: "sliding_window"}, {Name: "shadow", Limit: 1, Window: time.Second}}}},
			[]string{`tenant_list[0].limits[0].name: "lease" is reserved`, `tenant_list[0].limits[1].name: "shadow" is reserved`}},
		{"bad mode", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Limits: []limiter.Rule{{Name: "x", Limit: 1, Window: time.Second, Mode: "dry-run"}}}},
			[]string{`tenant_list[0].limits[0].mode: got "dry-run"; want enforce or shadow`}},
		{"route rule shadows", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Routes: []tenants.RouteSpec{{Limits: []limiter.Rule{{Name: "per_second", Limit: 1, Window: time.Second}}}}}},
			[]string{`tenant_list[0].routes[0].limits[0].name: "per_second" is already a limit`}},
		{"two routes, one name, two definitions", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Routes: []tenants.RouteSpec{
			{PathPrefix: "/a", Limits: []limiter.Rule{{Name: "x", Limit: 2, Window: time.Second}}},
			{PathPrefix: "/b", Limits: []limiter.Rule{{Name: "x", Limit: 3, Window: time.Hour}}}}}},
			[]string{`tenant_list[0].routes[1].limits[0].name: "x" is defined differently by another route`}},
		{"route concurrency without a name", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Routes: []tenants.RouteSpec{{PathPrefix: "/a", Concurrency: 2}}}},
			[]string{`tenant_list[0].routes[0].name: required with concurrency`}},
		{"route name without concurrency", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Routes: []tenants.RouteSpec{{PathPrefix: "/a", Name: "a_in_flight"}}}},
			[]string{`tenant_list[0].routes[0].name: set without concurrency`}},
		{"route concurrency out of range, named as a tenant rule", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Routes: []tenants.RouteSpec{{PathPrefix: "/a", Name: "per_second", Concurrency: -1}}}},
			[]string{`tenant_list[0].routes[0].concurrency: got -1; want 0 (no cap) to 100000`, `tenant_list[0].routes[0].name: "per_second" is already a limit`}},
		{"two routes, one concurrency name, two caps", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Routes: []tenants.RouteSpec{
			{PathPrefix: "/a", Name: "slow", Concurrency: 2}, {PathPrefix: "/b", Name: "slow", Concurrency: 3}}}},
			[]string{`tenant_list[0].routes[1].name: "slow" is defined differently by another route`}},
		{"bad algorithm", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Limits: []limiter.Rule{{Name: "x", Limit: 1, Window: time.Second, Algorithm: "token_bucket"}}}},
			[]string{`tenant_list[0].limits[0].algorithm: got "token_bucket"; want sliding_log, sliding_window or fixed`}},
		{"period on a sliding rule", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Limits: []limiter.Rule{{Name: "x", Limit: 1, Window: time.Second, Algorithm: "sliding_window", Period: "day", Anchor: 3}}}},
			[]string{`tenant_list[0].limits[0].period: only a fixed rule has one`, `tenant_list[0].limits[0].anchor: only a fixed rule`}},
		{"fixed without a period, with a window", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Limits: []limiter.Rule{{Name: "x", Limit: 1, Window: time.Second, Algorithm: "fixed"}}}},
			[]string{`tenant_list[0].limits[0].period: required for algorithm fixed`, `tenant_list[0].limits[0].window: a fixed rule counts per period`}},
		{"fixed, bad period, zone and anchor", nil, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Limits: []limiter.Rule{
			{Name: "x", Limit: 1, Algorithm: "fixed", Period: "year", Timezone: "Mars/Olympus"},
			{Name: "y", Limit: 1, Algorithm: "fixed", Period: "week", Anchor: 2},
			{Name: "z", Limit: 1, Algorithm: "fixed", Period: "month", Anchor: 32}}}},
			[]string{`tenant_list[0].limits[0].period: got "year"; want day, week or month`, `tenant_list[0].limits[0].timezone: unknown time zone Mars/Olympus`,
				`tenant_list[0].limits[1].anchor: only a monthly period`, `tenant_list[0].limits[2].anchor: got 32; want a day of the month, 1 to 31`}},
		{"bad unknown policy", func(o *tenants.Options) { o.Unknown = "allow" }, nil, []string{`tenants.unknown: got "allow"`}},
		{"dots only", nil, []tenants.Spec{{ID: "..", Plan: "free", Keys: []string{"k"}}}, []string{`tenant_list[0].id: got ".."; want at least one character other than .`}},
		{"anonymous without plan", func(o *tenants.Options) { o.Unknown = "anonymous" }, nil, []string{`tenants.anonymous_plan: unknown plan ""`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			if tc.o != nil {
				tc.o(&o)
			}
			_, err := tenants.Build(o, plans, tc.specs, noUpstream)
			if err == nil {
				t.Fatalf("Build: no error; want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q; want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "sk-live-secret") {
				t.Errorf("error %q quotes the value of key_hashes, maybe a plain key", err)
			}
		})
	}
}

// TestRuleBoundsKeepTheirEdges: a cost of 2^53, a sliding log's cost of
// 1000 and an "unlimited" limit of 2^63-1 are still taken
// (TestBuildErrors has a cost past each bound).
func TestRuleBoundsKeepTheirEdges(t *testing.T) {
	_, err := tenants.Build(opts(), plans, []tenants.Spec{{ID: "a", Plan: "free", Keys: []string{"k"}, Limits: []limiter.Rule{
		{Name: "log", Limit: math.MaxInt64, Window: time.Minute, Cost: limiter.MaxLogCost},
		{Name: "window", Limit: limiter.MaxCost, Window: time.Minute, Cost: limiter.MaxCost, Algorithm: "sliding_window"},
		{Name: "quota", Limit: math.MaxInt64, Cost: 1 << 20, Algorithm: "fixed", Period: "month"}}}}, func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
}

// TestRouteConcurrency: a tenant route's concurrency is a Lease rule of
// the route's name over the lease TTL, last among the matching requests'
// rules; the tenant's other requests do not carry it.
func TestRouteConcurrency(t *testing.T) {
	o := opts()
	o.LeaseTTL = 30 * time.Second
	s, err := tenants.Build(o, plans, []tenants.Spec{{ID: "acme", Plan: "free", Keys: []string{"k"}, Routes: []tenants.RouteSpec{
		{Methods: []string{"POST"}, PathPrefix: "/export", Name: "exports_in_flight", Concurrency: 2,
			Limits: []limiter.Rule{{Name: "exports", Limit: 10, Window: time.Minute}}}}}}, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := s.ByID("acme")
	rules := tn.Rules([]byte("POST"), []byte("/export/1"))
	last := rules[len(rules)-1]
	if last.Name != "exports_in_flight" || !last.Lease || last.Limit != 2 || last.Window != 30*time.Second || rules[len(rules)-2].Name != "exports" {
		t.Fatalf("POST /export rules %+v; want the route's limit, then its concurrency limit of 2 over 30s", rules)
	}
	if limiter.HasLease(tn.Rules([]byte("GET"), []byte("/export/1"))) {
		t.Fatal("GET /export carries the POST route's concurrency limit")
	}
}

func TestRoutesMayShareAnIdenticalRule(t *testing.T) {
	shared := limiter.Rule{Name: "writes", Limit: 5, Window: time.Second}
	s := build(t, opts(), tenants.Spec{ID: "a", Plan: "free", Keys: []string{"k"}, Routes: []tenants.RouteSpec{
		{Methods: []string{"POST"}, Limits: []limiter.Rule{shared}},
		{Methods: []string{"PUT"}, Limits: []limiter.Rule{shared}},
	}})
	tn, _ := s.ByID("a")
	if got := ruleNames(tn.AllRules()); got != "per_second=1s,per_minute=1m0s,writes=1s" {
		t.Fatalf("AllRules: %s; want the shared rule once", got)
	}
}

// TestTenantRuleReplacesAPlanRuleWhateverItsMode: names stay unique per
// tenant; a tenant rule of a plan rule's name replaces it, so a tenant
// tries a tighter plan limit in shadow (and enforces it, later, the same
// way).
func TestTenantRuleReplacesAPlanRuleWhateverItsMode(t *testing.T) {
	trial := limiter.Rule{Name: "per_minute", Limit: 100, Window: time.Minute, Mode: limiter.RuleShadow}
	s := build(t, opts(), tenants.Spec{ID: "a", Plan: "free", Keys: []string{"k"}, Limits: []limiter.Rule{trial}})
	tn, _ := s.ByID("a")
	rules := tn.Rules([]byte("GET"), []byte("/"))
	if len(rules) != 2 || rules[0].Name != "per_second" || rules[1] != trial {
		t.Fatalf("rules %v; want per_second, then the tenant's per_minute in shadow", rules)
	}
	if !rules[1].Shadow() || rules[0].Shadow() {
		t.Fatalf("Shadow(): %v %v; want false true", rules[0].Shadow(), rules[1].Shadow())
	}
}

// TestStoredRecordsKeepServing: registry records stored before a check
// was added (a sliding log's cost over 1000, a rule named concurrency
// beside a concurrency limit, a route an earlier one shadows, and the
// checks of 2026-12-02) still serve when read from Redis, so an upgrade
// drops no tenant, and a change to their plan re-checks them the same way
// (CheckStoredRecord); the same records written now through the admin API
// (CheckRecord, CheckPlan) are refused.
func TestStoredRecordsKeepServing(t *testing.T) {
	heavy := []limiter.Rule{{Name: "heavy", Limit: 100_000, Window: time.Minute, Cost: 4000}}
	crowd := tenants.Plan{Concurrency: 2, Limits: []limiter.Rule{{Name: tenants.ConcurrencyRule, Limit: 5, Window: time.Second}}}
	shadowed := []tenants.RouteSpec{
		{PathPrefix: "/a", Limits: []limiter.Rule{{Name: "a_any", Limit: 1, Window: time.Second}}},
		{Methods: []string{"GET"}, PathPrefix: "/a", Limits: []limiter.Rule{{Name: "a_get", Limit: 1, Window: time.Second}}},
	}
	recs := []tenants.Record{
		{Spec: tenants.Spec{ID: "heavy", Plan: "free", Keys: []string{"heavy-key"}, Limits: heavy}},
		{Spec: tenants.Spec{ID: "crowded", Plan: "crowd", Keys: []string{"crowd-key"}}},
		{Spec: tenants.Spec{ID: "shadowed", Plan: "free", Keys: []string{"shadow-key"}, Routes: shadowed}},
		// A route's prefix and methods, a key with white space, the zone
		// Local: checked since 2026-12-02.
		{Spec: tenants.Spec{ID: "loose", Plan: "free", Keys: []string{"loose key"}, Routes: []tenants.RouteSpec{
			{Methods: []string{"POST "}, PathPrefix: "v1", Limits: []limiter.Rule{{Name: "v1", Limit: 1, Window: time.Second}}}},
			Limits: []limiter.Rule{{Name: "daily", Limit: 5, Algorithm: limiter.AlgoFixed, Period: limiter.PeriodDay, Timezone: "Local"},
				{Name: "dear", Limit: 5, Cost: 10, Window: time.Second, Algorithm: limiter.AlgoSlidingWindow}}}},
	}
	reg := &tenants.Registry{Version: 1, Plans: map[string]tenants.Plan{"crowd": crowd}, Tenants: recs}
	s, err := tenants.BuildWith(opts(), plans, nil, reg, func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Problems(); len(p) > 0 {
		t.Errorf("stored records left out: %+v; want every one served", p)
	}
	for _, id := range []string{"heavy", "crowded", "shadowed", "loose"} {
		if _, ok := s.ByID(id); !ok {
			t.Errorf("stored tenant %s is not served", id)
		}
	}
	all := map[string]tenants.Plan{"crowd": crowd}
	for name, p := range plans {
		all[name] = p
	}
	for _, rec := range recs {
		if rec.ID == "crowded" {
			continue // its plan is the one refused
		}
		if err := tenants.CheckRecord(rec, all, func(string) bool { return false }); err == nil {
			t.Errorf("CheckRecord(%s): nil; want the write refused", rec.ID)
		}
		// A change to its plan re-checks it as the snapshot builds it.
		if err := tenants.CheckStoredRecord(rec, all, func(string) bool { return false }); err != nil {
			t.Errorf("CheckStoredRecord(%s): %v; want it kept, as the snapshot serves it", rec.ID, err)
		}
	}
	if err := tenants.CheckPlan("crowd", crowd); err == nil {
		t.Error("CheckPlan(crowd): nil; want the write refused")
	}
}
