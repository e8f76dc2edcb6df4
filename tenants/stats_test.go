package tenants_test

import (
	"testing"

	"github.com/VictoriaMetrics/metrics"

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
