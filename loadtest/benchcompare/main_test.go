package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// TestMain lets the test binary stand in for the command: the smoke test's
// runner re-runs os.Executable() — this binary — as the forwarder.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == forwarderCommand {
		os.Exit(forwarderMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == harness.ProbeCommand {
		os.Exit(harness.ProbeMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.bin != "bin/l1gw" || o.duration != 5*time.Second || o.runs != 3 || o.out != "loadtest/out/" {
		t.Errorf("defaults: %+v", o)
	}
	if !reflect.DeepEqual(o.conns, []int{64, 256}) || !reflect.DeepEqual(o.systems, systemNames()) {
		t.Errorf("conns %v, systems %v", o.conns, o.systems)
	}
	if o.limitedLimit != defaultLimitedLimit || o.tenants != 1 {
		t.Errorf("limitedLimit %d, tenants %d", o.limitedLimit, o.tenants)
	}
	if cmd := reproduce(o); strings.Contains(cmd, "-tenants") {
		t.Errorf("reproduce with one tenant: %s", cmd)
	}
	o, err = parseFlags([]string{"-tenants", "1000"}, io.Discard)
	if err != nil || o.tenants != 1000 || !strings.Contains(reproduce(o), "-tenants 1000") {
		t.Errorf("-tenants 1000: %d, %v, reproduce %s", o.tenants, err, reproduce(o))
	}
	if _, err := parseFlags([]string{"-tenants", "0"}, io.Discard); err == nil || !strings.Contains(err.Error(), "-tenants") {
		t.Errorf("-tenants 0: %v; want an error naming -tenants", err)
	}
}

func TestParseFlagsSelects(t *testing.T) {
	o, err := parseFlags([]string{"-systems", "l1gw-exact, naive,naive", "-conns", "8,8,16", "-runs", "1", "-duration", "1m", "-open-rate", "4000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o.systems, []string{"naive", "l1gw-exact"}) {
		t.Errorf("systems %v; want table order, deduplicated", o.systems)
	}
	if !reflect.DeepEqual(o.conns, []int{8, 16}) {
		t.Errorf("conns %v", o.conns)
	}
	cmd := reproduce(o)
	if o.openRate != 4000 || !strings.Contains(cmd, "-open-rate 4000") {
		t.Errorf("open rate %d, reproduce: %s; want 4000", o.openRate, cmd)
	}
	if !strings.Contains(cmd, "-systems naive,l1gw-exact") || !strings.Contains(cmd, "-conns 8,16") || !strings.Contains(cmd, "-duration 1m0s") {
		t.Errorf("reproduce: %s", cmd)
	}
}

func TestParseFlagsRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "0s"}, {"-duration", "61s"}, {"-duration", "x"},
		{"-runs", "0"}, {"-runs", "11"},
		{"-systems", "nginx"}, {"-systems", ""},
		{"-conns", "0"}, {"-conns", "5000"}, {"-conns", "a,b"}, {"-conns", ""},
		{"-open-rate", "-1"}, {"-open-rate", "100001"},
		{"extra"}, {"-nope"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q): no error", args)
		}
	}
}

func TestRunBadFlagsExitCode(t *testing.T) {
	var stderr strings.Builder
	if code := run([]string{"-runs", "99"}, io.Discard, &stderr); code != 2 {
		t.Errorf("exit code %d; want 2", code)
	}
	if !strings.Contains(stderr.String(), "-runs") {
		t.Errorf("stderr %q does not name the flag", stderr.String())
	}
}

func TestForwarderRejectsNonLoopback(t *testing.T) {
	var stderr strings.Builder
	code := forwarderMain([]string{"-listen", "0.0.0.0:0", "-upstream", "127.0.0.1:1"}, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "not 127.0.0.1") {
		t.Errorf("code %d, stderr %q", code, stderr.String())
	}
	if code := forwarderMain([]string{"-bogus"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("bad flag: code %d; want 2", code)
	}
	stderr.Reset()
	code = forwarderMain([]string{"-upstream", "127.0.0.1:1", "-autopipeline"}, io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "-autopipeline needs -redis") {
		t.Errorf("-autopipeline without -redis: code %d, stderr %q", code, stderr.String())
	}
}

func TestGatewayConfig(t *testing.T) {
	mem := gatewayConfig("127.0.0.1:1", "", "", 100, "", benchKeys(1))
	if mem.Redis.Mode != "memory" || mem.RateLimit != nil || len(mem.Redis.Addrs) != 0 {
		t.Errorf("memory config: %+v", mem)
	}
	ex := gatewayConfig("127.0.0.1:1", "127.0.0.1:2", "replica", 7, "", benchKeys(3))
	if ex.Redis.Mode != "standalone" || ex.RateLimit == nil || ex.RateLimit.Consistency != "replica" ||
		!reflect.DeepEqual(ex.Redis.Addrs, []string{"127.0.0.1:2"}) {
		t.Errorf("redis config: %+v", ex)
	}
	var tenants []string
	for _, tn := range ex.Tenants {
		tenants = append(tenants, tn.ID+"="+strings.Join(tn.Keys, ","))
	}
	if want := []string{"bench-0=bench-key-0", "bench-1=bench-key-1", "bench-2=bench-key-2", "limited=limited-key"}; !reflect.DeepEqual(tenants, want) {
		t.Errorf("3 bench tenants: %v; want %v", tenants, want)
	}
	if tn := mem.Tenants; len(tn) != 2 || tn[0].ID != "bench" || tn[0].Keys[0] != benchKey {
		t.Errorf("one bench tenant: %+v", tn)
	}
	if got := ex.Plans["limited"].Limits[0]; got.Limit != 7 || got.Window != "1h0m0s" || got.Algorithm != "" {
		t.Errorf("limited plan: %+v", got)
	}
	q := gatewayConfig("127.0.0.1:1", "127.0.0.1:2", "exact", 7, algorithmOf("l1gw-quota"), benchKeys(1))
	if got := q.Plans["limited"].Limits[0]; got.Algorithm != "fixed" || got.Period != "month" || got.Window != "" {
		t.Errorf("quota system's limited plan: %+v", got)
	}
	if got := gatewayConfig("127.0.0.1:1", "127.0.0.1:2", "exact", 7, algorithmOf("l1gw-window"), benchKeys(1)).Plans["bench"].Limits[0]; got.Algorithm != "sliding_window" || got.Window != "1s" {
		t.Errorf("window system's bench plan: %+v", got)
	}
}

// TestProbeSeesAFrozenCPU: a probe frozen between PINGs (as a CPU the host
// does not run freezes it, and Redis with it) finds Redis prompt when it
// wakes; its late wake-up is what says the CPU stalled.
func TestProbeSeesAFrozenCPU(t *testing.T) {
	ctx, rs := testRedis(t)
	p := testProbe(ctx, t, rs)
	const frozen = 200 * time.Millisecond
	time.Sleep(50 * time.Millisecond)
	if err := syscall.Kill(p.pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(frozen)
	if err := syscall.Kill(p.pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	res, err := p.finish()
	if err != nil {
		t.Fatal(err)
	}
	// The stop lands in a sleep, or, rarely, while a PING is out.
	if worst := max(res.WorstLateMs, res.WorstMs); worst < float64(frozen/time.Millisecond)*0.9 {
		t.Fatalf("frozen for %v: worst late wake-up %.1f ms, worst PING %.1f ms; want one of them about as long", frozen, res.WorstLateMs, res.WorstMs)
	}
	if res.Pings == 0 {
		t.Fatal("no PING answered")
	}
	if res.SpanMs < 300*0.9 || res.WorstAtMs > res.SpanMs {
		t.Errorf("probe span %.1f ms, worst PING sent at %.1f ms; want a span of at least the 300 ms slept, holding it", res.SpanMs, res.WorstAtMs)
	}
	t.Logf("frozen %v: worst late wake-up %.1f ms, worst PING %.1f ms", frozen, res.WorstLateMs, res.WorstMs)
}

// TestProbeCountsAPINGTheStopCut: a PING still out when the probe is
// stopped (Redis frozen) counts its wait so far, marked as cut, and when
// it was sent.
func TestProbeCountsAPINGTheStopCut(t *testing.T) {
	ctx, rs := testRedis(t)
	p := testProbe(ctx, t, rs)
	time.Sleep(100 * time.Millisecond)
	if err := syscall.Kill(rs.pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	const silent = 300 * time.Millisecond
	time.Sleep(silent)
	res, err := p.finish()
	if cerr := syscall.Kill(rs.pid(), syscall.SIGCONT); cerr != nil {
		t.Error(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Within 10 ms of the stop the probe sends its next PING, which Redis,
	// frozen, never answers.
	if !res.WorstCut || res.WorstMs < float64((silent-20*time.Millisecond)/time.Millisecond) {
		t.Errorf("worst PING %.1f ms, cut %v; want one of at least %v, cut by the stop", res.WorstMs, res.WorstCut, silent-20*time.Millisecond)
	}
	// The kernel acknowledged the PING though Redis was frozen: nothing
	// was sent again, and the probe says so.
	if res.WorstRetrans != 0 {
		t.Errorf("the probe's socket sent %d segments again to a frozen Redis; want 0", res.WorstRetrans)
	}
	if res.WorstAtMs < 90 || res.WorstAtMs > res.SpanMs {
		t.Errorf("worst PING sent at %.1f ms of %.1f; want after the 100 ms before the freeze", res.WorstAtMs, res.SpanMs)
	}
}

// TestRedisLatencySpikes: a script that holds Redis' event loop for 120 ms
// is in the latency monitor's record; before it, nothing is.
func TestRedisLatencySpikes(t *testing.T) {
	ctx, rs := testRedis(t)
	spikes, err := rs.latencySpikes(ctx)
	if err != nil || len(spikes) != 0 {
		t.Fatalf("a fresh Redis: %v, %v; want no spike", spikes, err)
	}
	rdb := rs.client()
	defer rdb.Close()
	const busy = `local s = redis.call('TIME')
repeat local n = redis.call('TIME') until (n[1] - s[1]) * 1000000 + (n[2] - s[2]) >= 120000
return 1`
	if err := rdb.Eval(ctx, busy, nil).Err(); err != nil {
		t.Fatal(err)
	}
	spikes, err = rs.latencySpikes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if spikes["command"] < 120 {
		t.Errorf("after a script of 120 ms: %v; want command ≥ 120", spikes)
	}
}

func TestParseLatencyLatest(t *testing.T) {
	got, err := parseLatencyLatest([]any{[]any{"command", int64(1700000000), int64(80), int64(1003)}, []any{"fork", int64(1), int64(60), int64(60)}})
	if err != nil || len(got) != 2 || got["command"] != 1003 || got["fork"] != 60 {
		t.Errorf("got %v, %v; want command 1003 (the max, not the latest) and fork 60", got, err)
	}
	for _, bad := range [][]any{{[]any{"command", int64(1), int64(2)}}, {"command"}, {[]any{int64(1), int64(1), int64(2), int64(3)}}, {[]any{"c", int64(1), int64(2), "3"}}} {
		if _, err := parseLatencyLatest(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// testRedis starts a redis-server for t, stopped when t ends, and a
// context that ends a minute later. It skips t under -short or without
// redis-server.
func testRedis(t *testing.T) (context.Context, *redisServer) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts redis-server; skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH (make test-deps installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	rs, err := startRedis(ctx, -1, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.stop() }) //nolint:errcheck // a test's cleanup
	return ctx, rs
}

// testProbe starts a probe of rs for t: this test binary stands in for
// the command.
func testProbe(ctx context.Context, t *testing.T, rs *redisServer) *redisProbe {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProbe(ctx, self, -1, rs.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop() }) //nolint:errcheck // stopped already unless the test failed first
	return p
}
