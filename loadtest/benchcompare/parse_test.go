package main

import (
	"math"
	"reflect"
	"testing"
)

func TestCPUTicks(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want int64
		ok   bool
	}{
		{"1234 (l1gw) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 0 0", 325, true},
		// The command name may hold spaces and parentheses.
		{"42 (a (b) c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 0 0", 10, true},
		{"42 (x) R 1 2 3", 0, false},                    // too few fields
		{"42 x R 1 2 3 4 5 6 7 8 9 10 11 12", 0, false}, // no ')'
		{"42 (x) R 1 1 1 0 -1 0 0 0 0 0 abc 3 0", 0, false},
		{"42 (x) R 1 1 1 0 -1 0 0 0 0 0 1 -3 0", 0, false},
		{"", 0, false},
	} {
		got, err := cpuTicks([]byte(tc.stat))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("cpuTicks(%q) = %d, %v; want %d, ok %v", tc.stat, got, err, tc.want, tc.ok)
		}
	}
}

func TestCPUTicksOfSelf(t *testing.T) {
	if _, err := cpuTicksOf(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

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

func TestStatusField(t *testing.T) {
	status := []byte("Name:\tl1gw\nCpus_allowed:\t1\nCpus_allowed_list:\t0\n")
	if got, err := statusField(status, "Cpus_allowed_list"); err != nil || got != "0" {
		t.Errorf("got %q, %v", got, err)
	}
	if got, err := statusField(status, "Cpus_allowed"); err != nil || got != "1" {
		t.Errorf("the prefix of a longer name: got %q, %v", got, err)
	}
	if _, err := statusField(status, "VmRSS"); err == nil {
		t.Error("no error for a missing field")
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:80": true, "localhost:80": false, "10.0.0.1:80": false, "[::1]:80": false, "127.0.0.1": false, "": false,
	} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v", addr, err)
		}
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

func TestCPUModel(t *testing.T) {
	info := []byte("processor\t: 0\nvendor_id\t: X\nmodel name\t: Some CPU @ 3GHz\nmodel name\t: other\n")
	if m, ok := cpuModel(info); !ok || m != "Some CPU @ 3GHz" {
		t.Errorf("got %q, %v", m, ok)
	}
	if _, ok := cpuModel([]byte("processor: 0\n")); ok {
		t.Error("found a model in cpuinfo without one")
	}
}
