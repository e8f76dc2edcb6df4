package tenants_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

func TestResponseCodesAreLabelledBounded(t *testing.T) {
	s := tenants.NewStats("stats-test")
	cases := []struct {
		code  int
		label string
	}{{200, "200"}, {429, "429"}, {503, "503"}, {418, "4xx"}, {299, "2xx"}, {103, "1xx"}, {599, "5xx"}, {0, "other"}, {99, "other"}, {600, "other"}, {-1, "other"}}
	for _, tc := range cases {
		c := metrics.GetOrCreateCounter(`l1gw_requests_total{tenant="stats-test",code="` + tc.label + `"}`)
		before := c.Get()
		s.Response(tc.code)
		if got := c.Get() - before; got != 1 {
			t.Errorf("code %d: counter %s grew by %d; want 1", tc.code, tc.label, got)
		}
	}
}

// TestCheckCreatesNoMetrics: checking a config (check-config) registers
// no tenant's counters; building the table for serving does.
func TestCheckCreatesNoMetrics(t *testing.T) {
	plans := map[string]tenants.Plan{"p": {Limits: []limiter.Rule{{Name: "r", Limit: 1, Window: time.Second}}}}
	specs := []tenants.Spec{{ID: "checked-only", Plan: "p", Keys: []string{"k"}}}
	opts := tenants.Options{KeyHeader: "X-API-Key", Unknown: tenants.UnknownReject, Source: tenants.SourceConfig}
	exported := func() bool {
		var b bytes.Buffer
		metrics.WritePrometheus(&b, false)
		return strings.Contains(b.String(), `tenant="checked-only"`)
	}
	if err := tenants.Check(opts, plans, specs, func(string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if exported() {
		t.Fatal("Check created the tenant's metrics; want none")
	}
	if _, err := tenants.Build(opts, plans, specs, func(string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if !exported() {
		t.Fatal("Build created no metrics for the tenant; want its decision counters")
	}
}
