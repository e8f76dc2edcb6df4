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
	k, ok = warnKey(`{"level":"WARN","msg":"rate-limit decision degraded","reason":"breaker","after_err":"no reply"}`)
	if !ok || k != "WARN rate-limit decision degraded (breaker, after: no reply)" {
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

func TestQuantiles(t *testing.T) {
	before := parseBuckets("l1gw_decision_duration_seconds_bucket{vmrange=\"1.000e-04...1.136e-04\"} 500\n", decisionMetric)
	after := parseBuckets("# TYPE x histogram\n"+
		"l1gw_decision_duration_seconds_bucket{vmrange=\"1.000e-04...1.136e-04\"} 549\n"+ // 49 new
		"l1gw_decision_duration_seconds_bucket{vmrange=\"8.799e-04...1.000e-03\"} 50\n"+
		"l1gw_decision_duration_seconds_bucket{vmrange=\"1.000e-02...1.136e-02\"} 1\n"+
		"l1gw_decision_duration_seconds_sum 0.1\n"+
		"l1gw_request_duration_seconds_bucket{vmrange=\"1.000e+00...1.136e+00\"} 7\n", decisionMetric)
	p50, p99, ok := quantiles(before, after)
	// 100 new decisions: the 50th is in the 1 ms bucket, the 99th too, the
	// 100th alone in the 11 ms one.
	if !ok || math.Abs(p50-1) > 1e-9 || math.Abs(p99-1) > 1e-9 {
		t.Errorf("P50 %v, P99 %v, %v; want 1 ms and 1 ms", p50, p99, ok)
	}
	after["1.000e-02...1.136e-02"] = 2
	if _, p99, _ := quantiles(before, after); math.Abs(p99-11.36) > 1e-9 {
		t.Errorf("with 2 of 101 at 11 ms, P99 %v; want 11.36 ms", p99)
	}
	if _, _, ok := quantiles(after, after); ok {
		t.Error("ok with no decision between the scrapes")
	}
}

func TestParseBucketsSumsOverLabels(t *testing.T) {
	text := "l1gw_redis_call_duration_seconds_bucket{role=\"primary\",node=\"a:1\",vmrange=\"1.000e-04...1.136e-04\"} 3\n" +
		"l1gw_redis_call_duration_seconds_bucket{role=\"replica\",node=\"b:1\",vmrange=\"1.000e-04...1.136e-04\"} 4\n" +
		"l1gw_redis_call_duration_seconds_bucket{role=\"primary\",node=\"a:1\",vmrange=\"1.000e-03...1.136e-03\"} nope\n"
	want := buckets{"1.000e-04...1.136e-04": 7}
	if got := parseBuckets(text, redisCallMetric); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}
}

func TestParseBatches(t *testing.T) {
	before := parseBatches("l1gw_decision_batch_size_sum{role=\"primary\",node=\"a\"} 100\n" +
		"l1gw_decision_batch_size_count{role=\"primary\",node=\"a\"} 50\n" +
		"l1gw_decisions_shared_total 10\n")
	after := parseBatches("# HELP x\n" +
		"l1gw_decision_batch_size_sum{role=\"primary\",node=\"a\"} 400\n" + // two nodes: summed
		"l1gw_decision_batch_size_sum{role=\"primary\",node=\"b\"} 100\n" +
		"l1gw_decision_batch_size_count{role=\"primary\",node=\"a\"} 100\n" +
		"l1gw_decision_batch_size_count{role=\"primary\",node=\"b\"} 50\n" +
		"l1gw_decision_batch_size_bucket{role=\"primary\",node=\"a\",vmrange=\"1...2\"} 9\n" +
		"l1gw_decisions_shared_total 310\n" +
		"l1gw_decisions_shared_total_other 7\n")
	// 400 decisions in 100 calls since, 300 of them shared.
	size, shared, ok := before.over(after)
	if !ok || size != 4 || shared != 75 {
		t.Errorf("size %v, shared %v%%, %v; want 4 per call, 75%%", size, shared, ok)
	}
	if _, _, ok := after.over(after); ok {
		t.Error("ok with no call between the scrapes")
	}
	if _, _, ok := parseBatches("").over(parseBatches("l1gw_decisions_shared_total 3\n")); ok {
		t.Error("ok for a system without batches")
	}
}

func TestStealTicks(t *testing.T) {
	stat := "cpu  1805374 224176 526549 2892267 4286 0 201703 27423 0 0\n" +
		"cpu0 846417 113980 256529 1502651 2444 0 100981 13812 0 0\n" +
		"cpu1 958956 110195 270019 1389616 1842 0 100721 13610 0 0\n" +
		"cpu2 1 2 3 4 5 6 7\n" +
		"intr 123 4 5\nctxt 99\n"
	got, err := stealTicks([]byte(stat))
	if err != nil || !reflect.DeepEqual(got, map[int]int64{0: 13812, 1: 13610, 2: 0}) {
		t.Errorf("got %v, %v; want cpu0 13812, cpu1 13610, cpu2 (no steal field) 0", got, err)
	}
	for _, bad := range []string{"cpuX 1 2 3 4 5 6 7 8 9\n", "cpu0 1 2 3 4 5 6 7 -8 9\n", "cpu0 1 2 3 4 5 6 7 x 9\n"} {
		if _, err := stealTicks([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	before, after := map[int]int64{0: 5, 1: 100}, map[int]int64{0: 5, 1: 197}
	if v := stealMs(before, after, 1); v == nil || math.Abs(*v-970) > 1e-9 {
		t.Errorf("97 ticks of steal: %v; want 970 ms", v)
	}
	if v := stealMs(before, after, -1); v != nil {
		t.Errorf("an unpinned CPU: %v; want nil", *v)
	}
	if _, err := readSteal(); err != nil {
		t.Errorf("this machine's /proc/stat: %v", err)
	}
}

func TestTCPCounters(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 2 64\n" +
		"Tcp: RtoAlgorithm MaxConn RetransSegs InErrs\nTcp: 1 -1 5379 0\n"
	netstat := "TcpExt: SyncookiesSent TCPTimeouts TCPLossProbes TCPSynRetrans\nTcpExt: 0 139 5400 133\n" +
		"IpExt: InNoRoutes\nIpExt: 0\n"
	got, err := tcpCounters([]byte(snmp), []byte(netstat))
	want := map[string]int64{"RetransSegs": 5379, "TCPTimeouts": 139, "TCPLossProbes": 5400, "TCPSynRetrans": 133}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"Tcp: RetransSegs\nTcp: x\n", "Tcp: A RetransSegs\nTcp: 1\n", "Tcp: RetransSegs\nUdp: 1\n"} {
		if _, err := tcpCounters([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	after := map[string]int64{"RetransSegs": 5381, "TCPTimeouts": 139, "TCPLossProbes": 5402, "TCPSynRetrans": 133}
	if g := grown(want, after); !reflect.DeepEqual(g, map[string]int64{"RetransSegs": 2, "TCPLossProbes": 2}) {
		t.Errorf("grown: %v; want RetransSegs=2, TCPLossProbes=2 only", g)
	}
	if c, err := readTCP(); err != nil || len(c) != len(tcpWatched) {
		t.Errorf("this machine's counters: %v, %v; want all of %v", c, err, tcpWatched)
	}
}
