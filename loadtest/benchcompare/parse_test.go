package main

import (
	"math"
	"reflect"
	"testing"
)

func TestCPUMicrosPerRequest(t *testing.T) {
	if v, ok := cpuMicrosPerRequest(100, 150, 1000); !ok || math.Abs(v-500) > 1e-9 {
		t.Errorf("50 ticks over 1000 requests = %v, %v; want 500 µs", v, ok)
	}
	if _, ok := cpuMicrosPerRequest(100, 150, 0); ok {
		t.Error("ok with no requests")
	}
	if _, ok := cpuMicrosPerRequest(150, 100, 10); ok {
		t.Error("ok with ticks going backwards")
	}
}

func TestMatchServing(t *testing.T) {
	v, ok := matchServing(`{"time":"x","level":"INFO","msg":"serving","proxy":"127.0.0.1:1","admin":"127.0.0.1:2"}`)
	if !ok || v != "127.0.0.1:1 127.0.0.1:2" {
		t.Errorf("got %q, %v", v, ok)
	}
	for _, line := range []string{`{"msg":"starting"}`, "serving", `{"msg":`} {
		if _, ok := matchServing(line); ok {
			t.Errorf("matched %q", line)
		}
	}
}

func TestWarnKey(t *testing.T) {
	k, ok := warnKey(`{"level":"WARN","msg":"rate-limit store did not decide; degraded","reason":"budget","err":"x"}`)
	if !ok || k != "WARN rate-limit store did not decide; degraded (budget: x)" {
		t.Errorf("got %q, %v", k, ok)
	}
	for _, line := range []string{`{"level":"INFO","msg":"WARN"}`, `not json "WARN"`, `{"level":"ERROR"`} {
		if _, ok := warnKey(line); ok {
			t.Errorf("matched %q", line)
		}
	}
}

func TestParseDegraded(t *testing.T) {
	text := "# HELP x\nl1gw_degraded_decisions_total{reason=\"budget\"} 76\n" +
		"l1gw_degraded_decisions_total{reason=\"breaker\"} 3.2625e+04\n" +
		"l1gw_degraded_decisions_total{reason=\"error\"} 0\n" +
		"l1gw_degraded_decisions_total{reason=\"shed\"} nope\n" +
		"l1gw_other{reason=\"budget\"} 9\n"
	want := map[string]int64{"budget": 76, "breaker": 32625}
	if got := parseDegraded(text); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}
}
