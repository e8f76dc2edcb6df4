package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// smokeLimit is the limited tenant's limit in the smoke test: low enough
// that the short closed loop sends more than it.
const smokeLimit = 5

// TestSmoke runs every system once, briefly, end to end: forwarders,
// gateways, redis-servers, pinning, both loads (over 3 bench tenants) and
// the report. It builds
// ./cmd/l1gw, or uses $BENCHCOMPARE_L1GW_BIN when set.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and sends load; skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH (make test-deps installs it)")
	}
	o := options{
		bin: smokeGateway(t), duration: 300 * time.Millisecond, runs: 1, systems: systemNames(),
		conns: []int{8}, out: t.TempDir(), limitedLimit: smokeLimit,
		tenants: 3, // every system must know every key: a 401 fails below
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := runAll(ctx, o, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rep.Measurements), 2*len(systems); got != want {
		t.Fatalf("%d measurements; want %d (closed 8 and open per system)", got, want)
	}
	for _, m := range rep.Measurements {
		checkSmokeMeasurement(t, m)
	}
	md := rep.Markdown()
	for _, name := range systemNames() {
		if !strings.Contains(md, "| "+name+" | closed 8 |") || !strings.Contains(md, "| "+name+" | open @ ") {
			t.Errorf("table lacks %s's rows:\n%s", name, md)
		}
	}
	if err := rep.Write(o.out, md); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", md)
}

// checkSmokeMeasurement checks what must hold for any system, loaded or not.
func checkSmokeMeasurement(t *testing.T, m Measurement) {
	t.Helper()
	where := m.System + " " + m.Load
	if m.Responses == 0 || m.RPS <= 0 {
		t.Errorf("%s: served nothing: %d responses, %.0f req/s", where, m.Responses, m.RPS)
	}
	if m.TransportErrors != 0 {
		t.Errorf("%s: %d transport errors: %v", where, m.TransportErrors, m.Errors)
	}
	if m.LimitedSent == 0 {
		t.Errorf("%s: sent no request of the limited tenant", where)
	}
	if (m.System == "upstream") != (m.GwCPU == nil) {
		t.Errorf("%s: gw CPU %v; want it for every system but the upstream", where, m.GwCPU)
	}
	if sys, _ := findSystem(m.System); sys.redis != (m.RedisCPU != nil) {
		t.Errorf("%s: Redis CPU %v; want it exactly for the systems on Redis", where, m.RedisCPU)
	}
	if sys, _ := findSystem(m.System); sys.redis != (m.RedisPingMax != nil) || m.RedisPingMax != nil && *m.RedisPingMax <= 0 {
		t.Errorf("%s: Redis worst PING %v; want a round trip exactly for the systems on Redis", where, m.RedisPingMax)
	}
	if sys, _ := findSystem(m.System); sys.redis != (m.RedisCPUStallMax != nil) || m.RedisCPUStallMax != nil && *m.RedisCPUStallMax < 0 {
		t.Errorf("%s: Redis CPU worst stall %v; want one, not negative, exactly for the systems on Redis", where, m.RedisCPUStallMax)
	}
	if decides := m.System != "upstream" && m.System != "bare"; decides != (m.DecisionP99 != nil) ||
		m.DecisionP99 != nil && (*m.DecisionP50 <= 0 || *m.DecisionP99 < *m.DecisionP50) {
		t.Errorf("%s: decision P50 %v, P99 %v; want both, in order, exactly for the systems that decide", where, m.DecisionP50, m.DecisionP99)
	}
	if gwOnRedis := strings.HasPrefix(m.System, "l1gw-") && m.System != "l1gw-memory"; gwOnRedis != (m.RedisCallP99 != nil) ||
		m.RedisCallP99 != nil && *m.RedisCallP99 <= 0 {
		t.Errorf("%s: Redis call P99 %v; want one exactly for the gateways on Redis", where, m.RedisCallP99)
	}
	if gwOnRedis := strings.HasPrefix(m.System, "l1gw-") && m.System != "l1gw-memory"; gwOnRedis != (m.BatchSize != nil) ||
		m.BatchSize != nil && (*m.BatchSize < 1 || *m.SharedPct < 0 || *m.SharedPct > 100) {
		t.Errorf("%s: decisions per call %v, shared %v%%; want them exactly for the gateways on Redis, at least 1 per call", where, m.BatchSize, m.SharedPct)
	}
	if m.Load == "open" && (m.P50 == nil || m.P99 == nil || *m.P99 < *m.P50) {
		t.Errorf("%s: latencies P50 %v, P99 %v", where, m.P50, m.P99)
	}
	for code, n := range m.Codes {
		ok := code == 200 || m.Enforced && code == 429
		if !ok {
			t.Errorf("%s: %d responses with status %d", where, n, code)
		}
	}
	if !m.Enforced {
		if m.System != "upstream" && m.System != "bare" {
			t.Errorf("%s: does not enforce limits", where)
		}
		return
	}
	if m.LimitedOK() > smokeLimit {
		t.Errorf("%s: the limited tenant got %d of %d requests admitted marked ok; its limit is %d (and %d admitted marked degraded)",
			where, m.LimitedOK(), m.LimitedSent, smokeLimit, m.LimitedDegraded)
	}
	if m.LimitedSent > smokeLimit && m.Codes[429] == 0 {
		t.Errorf("%s: %d limited requests, limit %d, and no 429", where, m.LimitedSent, smokeLimit)
	}
	if m.Degraded > 0 {
		t.Logf("%s: %d degraded responses; gateway's degraded decisions by reason: %v", where, m.Degraded, m.DegradedByReason)
	}
}

// smokeGateway is the gateway binary the smoke test runs.
func smokeGateway(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("BENCHCOMPARE_L1GW_BIN"); bin != "" {
		return bin
	}
	bin, err := harness.BuildGateway(t.Context(), t.TempDir(), "../..")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// testWriter sends the runner's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
