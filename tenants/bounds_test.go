package tenants_test

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// manySpecs is n tenants of plan free, tenant i with key "key-i".
func manySpecs(prefix string, n int) []tenants.Spec {
	specs := make([]tenants.Spec, n)
	for i := range specs {
		id := prefix + strconv.Itoa(i)
		specs[i] = tenants.Spec{ID: id, Plan: "free", Keys: []string{"key-" + id}}
	}
	return specs
}

func TestMaxTenants(t *testing.T) {
	o := opts()
	o.Max = 3
	build(t, o, manySpecs("max-ok-", 3)...)
	_, err := tenants.Build(o, plans, manySpecs("max-over-", 4), anyUpstream)
	if err == nil || !strings.Contains(err.Error(), "tenant_list: got 4 tenants; want at most tenants.max (3)") {
		t.Errorf("4 tenants past tenants.max 3: got %v; want an error naming tenant_list and tenants.max", err)
	}
}

// TestMaxRoutes: a tenant takes up to 100 routes, each of its own rules
// (every gateway keeps each route's rules); one more is refused, naming the
// tenant's routes. A registry record at its 64 KiB cap held 590.
func TestMaxRoutes(t *testing.T) {
	spec := func(n int) tenants.Spec {
		s := tenants.Spec{ID: "many", Plan: "free", Keys: []string{"k"}}
		for i := range n {
			s.Routes = append(s.Routes, tenants.RouteSpec{PathPrefix: fmt.Sprintf("/r%03d/", i),
				Limits: []limiter.Rule{{Name: "route", Limit: 5, Window: time.Second}}})
		}
		return s
	}
	build(t, opts(), spec(100))
	_, err := tenants.Build(opts(), plans, []tenants.Spec{spec(101)}, anyUpstream)
	if err == nil || !strings.Contains(err.Error(), "routes: 101 routes; at most 100 a tenant") {
		t.Errorf("101 routes: got %v; want an error naming the tenant's routes", err)
	}
}

// TestMetricsMax: past tenants.metrics_max, tenants share the (other)
// label; the first ones keep their own.
func TestMetricsMax(t *testing.T) {
	o := opts()
	o.MetricsMax = 2
	s := build(t, o, manySpecs("mm-", 4)...)
	own := func(id string) *tenants.Stats {
		ten, _ := s.ByID(id)
		return ten.Stats
	}
	if own("mm-0") == own("mm-1") || own("mm-1") == own("mm-2") {
		t.Fatal("the first two tenants share metric handles; want their own")
	}
	if own("mm-2") != own("mm-3") {
		t.Fatal("tenants past metrics_max have handles of their own; want them shared")
	}
	before := metrics.GetOrCreateCounter(`l1gw_ratelimit_decisions_total{tenant="(other)",result="allowed"}`).Get()
	own("mm-3").Allowed.Inc()
	if got := metrics.GetOrCreateCounter(`l1gw_ratelimit_decisions_total{tenant="(other)",result="allowed"}`).Get(); got != before+1 {
		t.Errorf("(other) allowed: got %d; want %d", got, before+1)
	}
	var b strings.Builder
	metrics.WritePrometheus(&b, false)
	if strings.Contains(b.String(), `tenant="mm-3"`) {
		t.Error(`metrics name tenant "mm-3", past metrics_max`)
	}
}

// BenchmarkResolve is the request path's tenant lookup with 10 to 100 000
// tenants: a SHA-256 of the key and one map read, so its cost does not
// grow with the count. It also reports, per count, the time to build the
// snapshot and the heap it holds.
func BenchmarkResolve(b *testing.B) {
	for _, n := range []int{10, 1000, 100000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			o := opts()
			o.MetricsMax = 1000
			specs := manySpecs(fmt.Sprintf("bench%d-", n), n)
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			start := time.Now()
			s, err := tenants.Build(o, plans, specs, anyUpstream)
			took := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			runtime.ReadMemStats(&m1)
			keys := make([][]byte, 1024)
			for i := range keys {
				keys[i] = []byte(specs[(i*7919)%n].Keys[0])
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if t, _ := s.Resolve(keys[i%len(keys)]); t == nil {
					b.Fatal("unresolved")
				}
			}
			// After the loop: b.Loop's first call resets the timer, and
			// with it any metric reported before.
			b.ReportMetric(float64(took.Microseconds())/1000, "build-ms")
			b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/float64(n), "heap-B/tenant")
			runtime.KeepAlive(s)
		})
	}
}

// TestRetiringKeys: a retiring key works until its expiry and not after;
// a tenant's key set must be unambiguous.
func TestRetiringKeys(t *testing.T) {
	soon := time.Now().Add(time.Hour)
	past := time.Now().Add(-time.Second)
	s := build(t, opts(), tenants.Spec{ID: "rot", Plan: "free", Keys: []string{"new-key"}, RetiringKeys: []tenants.RetiringKey{
		{Key: "old-key", ExpiresAt: soon},
		{KeyHash: tenants.HashKey("older-key"), ExpiresAt: soon},
		{Key: "oldest-key", ExpiresAt: past},
	}})
	if !s.Known([]byte("oldest-key")) || s.Known([]byte("nobody's")) {
		t.Error("Known: want an expired retiring key known, another key not")
	}
	for key, want := range map[string]tenants.Resolution{
		"new-key": tenants.Resolved, "old-key": tenants.Resolved, "older-key": tenants.Resolved, "oldest-key": tenants.UnknownKey,
	} {
		if _, got := s.Resolve([]byte(key)); got != want {
			t.Errorf("Resolve(%s): got %v; want %v", key, got, want)
		}
	}
	for key, want := range map[string]time.Time{
		"new-key": {}, "old-key": soon, "older-key": soon, "oldest-key": past, "nobody's": {}, "": {},
	} {
		if got := s.Expires([]byte(key)); !got.Equal(want) {
			t.Errorf("Expires(%q): got %v; want %v", key, got, want)
		}
	}
	for _, tc := range []struct {
		name string
		rk   tenants.RetiringKey
		want string
	}{
		{"no expiry", tenants.RetiringKey{Key: "x"}, "tenant_list[0].retiring_keys[0].expires_at: required"},
		{"neither", tenants.RetiringKey{ExpiresAt: soon}, "tenant_list[0].retiring_keys[0]: want one of key and key_hash"},
		{"both", tenants.RetiringKey{Key: "x", KeyHash: tenants.HashKey("x"), ExpiresAt: soon}, "want one of key and key_hash"},
		{"bad hash", tenants.RetiringKey{KeyHash: "sk-plain", ExpiresAt: soon}, "tenant_list[0].retiring_keys[0].key_hash: want sha256:"},
		{"also a current key", tenants.RetiringKey{Key: "new-key", ExpiresAt: soon}, "tenant_list[0].retiring_keys[0].key: this key is given twice to this tenant"},
		{"past the year 2200", tenants.RetiringKey{Key: "x", ExpiresAt: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}, "want a time between the years 2000 and 2200"},
		{"the epoch", tenants.RetiringKey{Key: "x", ExpiresAt: time.Unix(0, 0)}, "want a time between the years 2000 and 2200"},
	} {
		_, err := tenants.Build(opts(), plans, []tenants.Spec{{ID: "rot", Plan: "free", Keys: []string{"new-key"}, RetiringKeys: []tenants.RetiringKey{tc.rk}}}, anyUpstream)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v; want an error with %q", tc.name, err, tc.want)
		}
	}
}

// TestRetire: a reload that drops a tenant, or moves it past
// metrics_max, removes its series; a tenant labelled in both keeps them.
func TestRetire(t *testing.T) {
	o := opts()
	o.MetricsMax = 2
	old := build(t, o, manySpecs("ret-", 3)...) // ret-0, ret-1 labelled
	for _, id := range []string{"ret-0", "ret-1"} {
		ten, _ := old.ByID(id)
		ten.Stats.Allowed.Inc()
		ten.Stats.Response(200)
	}
	cur := build(t, o, tenants.Spec{ID: "ret-new", Plan: "free", Keys: []string{"new"}}, manySpecs("ret-", 2)[1])
	tenants.Retire(old, cur)
	// A request of ret-0 that outlived the reload (a long stream) ends
	// with a code not counted before: no series comes back.
	dropped, _ := old.ByID("ret-0")
	dropped.Stats.Response(502)
	var b strings.Builder
	metrics.WritePrometheus(&b, false)
	out := b.String()
	if strings.Contains(out, `tenant="ret-0"`) {
		t.Error(`ret-0, dropped by the reload, still has series`)
	}
	if !strings.Contains(out, `l1gw_ratelimit_decisions_total{tenant="ret-1",result="allowed"}`) || !strings.Contains(out, `l1gw_requests_total{tenant="ret-1",code="200"}`) {
		t.Error(`ret-1, labelled in both, lost its series`)
	}
	// ret-0 back in the next reload: the old request, still running,
	// ends with a code the new handles count too; the live series stays.
	back := build(t, o, manySpecs("ret-", 2)...)
	tenants.Retire(cur, back)
	again, _ := back.ByID("ret-0")
	again.Stats.Response(404)
	dropped.Stats.Response(404)
	again.Stats.Response(404)
	b.Reset()
	metrics.WritePrometheus(&b, false)
	if want := `l1gw_requests_total{tenant="ret-0",code="404"} 2`; !strings.Contains(b.String(), want) {
		t.Errorf("ret-0 added back: /metrics lacks %s: the old handles counted in, or unregistered, the live series", want)
	}
}
