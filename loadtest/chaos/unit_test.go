package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
)

// at is a time ms milliseconds after a fixed origin.
func at(ms int) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond)
}

// samplesOf turns "o"/"d" (ok/degraded) at 10 ms steps from 0 into samples.
func samplesOf(states string) []sample {
	ss := make([]sample, len(states))
	for i, c := range states {
		ss[i] = sample{at: at(10 * i), code: 200, state: stateOK}
		if c == 'd' {
			ss[i].state = stateDegraded
		}
	}
	return ss
}

func TestRecoveryMs(t *testing.T) {
	tests := []struct {
		name          string
		states        string
		healed, until int // ms; until 0 is no next fault
		want          string
	}{
		{"ok throughout", "oooo", 0, 0, "0"},
		{"degraded, then ok", "ddddoooo", 10, 0, "30"},
		{"flaps before settling", "ddododoo", 0, 0, "60"},
		{"never settles", "ooood", 0, 0, "never"},
		{"degraded only before the heal", "ddoo", 20, 0, "0"},
		{"a later fault does not count", "ddoodd", 0, 40, "20"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			until := time.Time{}
			if tc.until > 0 {
				until = at(tc.until)
			}
			if got := fmtMs(recoveryMs(samplesOf(tc.states), at(tc.healed), until)); got != tc.want {
				t.Errorf("got %s; want %s", got, tc.want)
			}
		})
	}
}

func TestRecoveriesFollowHealMarks(t *testing.T) {
	marks := []phaseMark{
		{name: "before", at: at(0)},
		{name: "stall", at: at(20), fault: true},
		{name: "after", at: at(40), heal: true},
	}
	got := recoveries(marks, samplesOf("ooddddoo"))
	if len(got) != 1 || got[0].After != "after" || fmtMs(got[0].Ms) != "20" {
		t.Fatalf("got %+v; want one recovery of 20 ms after \"after\"", got)
	}
}

func TestSummarizeAdmissions(t *testing.T) {
	var ss []sample
	for i := range 30 { // 30 limited 200s over 1.5 s
		ss = append(ss, sample{at: at(50 * i), code: 200, state: stateOK, limited: true, latency: time.Duration(i+1) * time.Millisecond})
	}
	ss = append(ss, sample{at: at(1490), code: 429, state: stateDegraded, limited: true, latency: 100 * time.Millisecond})
	p := summarize("x", ss, at(0), at(1500), 10)
	if p.Requests != 31 || p.Degraded != 1 || p.StatusCodes["200"] != 30 || p.StatusCodes["429"] != 1 {
		t.Errorf("got %d requests, %d degraded, codes %v; want 31, 1, 200:30 429:1", p.Requests, p.Degraded, p.StatusCodes)
	}
	if a := p.Limited; a.Admitted != 30 || a.Bound != 20 || a.Over != 10 {
		t.Errorf("got admissions %+v; want 30 admitted, bound 20 (10 × ⌈1.5⌉), over 10", a)
	}
	if l := p.LatencyMs; l.P50 != 16 || l.Max != 100 {
		t.Errorf("got latency %+v; want P50 16 ms, max 100 ms", l)
	}
	if got := peakAdmitted(ss, time.Second); got != 20 {
		t.Errorf("peakAdmitted: got %d; want 20 (one every 50 ms)", got)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP x
l1gw_ratelimit_decisions_total{tenant="bulk",result="degraded"} 7
l1gw_ratelimit_decisions_total{tenant="limited",result="degraded"} 3
l1gw_ratelimit_decisions_total{tenant="bulk",result="allowed"} 100
l1gw_degraded_decisions_total{reason="breaker"} 9
go_goroutines 42
go_goroutines_other 1
l1gw_connections_open 10
l1gw_admin_connections_open 2
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got := sumSeries(m, "l1gw_ratelimit_decisions_total", `result="degraded"`); got != 10 {
		t.Errorf("degraded decisions: got %v; want 10", got)
	}
	if got := sumSeries(m, "go_goroutines"); got != 42 {
		t.Errorf("go_goroutines: got %v; want 42 (not the _other series)", got)
	}
	if got := servedGoroutines(m); got != 30 {
		t.Errorf("servedGoroutines: got %d; want 30 (42 less 10 proxy and 2 admin connections)", got)
	}
	if got := degradedReasons(map[string]float64{}, m); len(got) != 1 || got["breaker"] != 9 {
		t.Errorf("degradedReasons: got %v; want breaker:9", got)
	}
	if _, err := parseMetrics(strings.NewReader("novalue\n")); err == nil {
		t.Errorf("got no error for a line without a value")
	}
}

func TestParseTCPTable(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1
   2: 0100007F:C351 0100007F:18EB 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 20 4 30 10 -1
`
	rows := parseTCPTable([]byte(table))
	want := []tcpRow{{8080, 0, "0A", "111"}, {8080, 50000, "01", "222"}, {50001, 6379, "01", "333"}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("got %v; want %v", rows, want)
	}
}

func TestClassifyCountsASocketOnce(t *testing.T) {
	rows := []tcpRow{
		{8080, 0, tcpListen, "1"}, // the listener
		{8080, 50000, "01", "2"},  // a client
		{8080, 50000, "01", "2"},  // the same client, listed twice
		{50001, 6379, "01", "3"},  // Redis
		{50002, 9000, "01", "4"},  // the upstream
		{50003, 6379, "01", "99"}, // another process's
		{50004, 6379, "06", "0"},  // TIME_WAIT, no inode
	}
	inodes := map[string]bool{"1": true, "2": true, "3": true, "4": true}
	got := classify(rows, inodes, map[int]bool{8080: true}, peers{redis: map[int]bool{6379: true}, upstream: 9000})
	if want := (sockets{client: 1, redis: 1, upstream: 1}); got != want {
		t.Errorf("got %+v; want %+v", got, want)
	}
}

func TestLatencyProxy(t *testing.T) {
	echo := testkit.Listen(t, func(c net.Conn) { _, _ = io.Copy(c, c); c.Close() })
	p, err := startLatencyProxy(echo)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	roundTrip := func(msg string) time.Duration {
		start := time.Now()
		if _, err := io.WriteString(c, msg+"\n"); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != msg+"\n" {
			t.Fatalf("echo of %q: got %q, %v", msg, got, err)
		}
		return time.Since(start)
	}
	roundTrip("warm")
	p.SetLatency(50 * time.Millisecond)
	if d := roundTrip("slow"); d < 50*time.Millisecond {
		t.Errorf("round trip with 50ms latency took %v; want at least 50ms", d)
	}
	for i := range 20 { // many chunks in flight stay in order
		if _, err := fmt.Fprintf(c, "%d\n", i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		if got, err := r.ReadString('\n'); err != nil || got != fmt.Sprintf("%d\n", i) {
			t.Fatalf("chunk %d: got %q, %v", i, got, err)
		}
	}
}

// TestScenarioT: the command's stand-in for *testing.T stops a scenario
// at Fatalf, runs its cleanups last first (also one that fails), removes
// its temporary directories and returns every error.
func TestScenarioT(t *testing.T) {
	var order []string
	var dir string
	errs := runScenarioT(t.Context(), "s", io.Discard, func(st T) {
		dir = st.TempDir()
		st.Cleanup(func() { order = append(order, "first") })
		st.Cleanup(func() { order = append(order, "second"); st.Fatalf("cleanup failed") })
		st.Errorf("went on %d", 1)
		if !st.Failed() {
			t.Error("Failed() = false after Errorf")
		}
		st.Fatalf("stopped")
		order = append(order, "after Fatalf")
	})
	if want := []string{"went on 1", "stopped", "cleanup failed"}; !slices.Equal(errs, want) {
		t.Errorf("errors %q; want %q", errs, want)
	}
	if want := []string{"second", "first"}; !slices.Equal(order, want) {
		t.Errorf("ran %q; want %q", order, want)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("TempDir %s after the scenario: %v; want it removed", dir, err)
	}
}

// TestSelectScenarios: names pick scenarios in the order given; an unknown
// one is an error that lists them.
func TestSelectScenarios(t *testing.T) {
	got, err := selectScenarios("9-down-at-start, 1-primary-stall")
	if err != nil || len(got) != 2 || got[0].name != "9-down-at-start" || got[1].name != "1-primary-stall" {
		t.Errorf("selectScenarios = %v, %v; want 9-down-at-start, 1-primary-stall", got, err)
	}
	if _, err := selectScenarios("nope"); err == nil || !strings.Contains(err.Error(), "1-primary-stall") {
		t.Errorf("unknown scenario: %v; want an error listing the scenarios", err)
	}
}

// TestGatewayName: a stamped binary is named by its version; an unstamped
// one by its path beside the work tree's commit, never by the commit alone.
func TestGatewayName(t *testing.T) {
	for _, tc := range []struct{ version, tree, want string }{
		{"l1gw 955b88a", "b2831e5", "l1gw 955b88a"},
		{"l1gw dev", "b2831e5-dirty", "l1gw dev (/tmp/l1gw; work tree at b2831e5-dirty)"},
		{"l1gw dev", "", "l1gw dev (/tmp/l1gw)"},
		{"unknown", "b2831e5", "unknown (/tmp/l1gw; work tree at b2831e5)"},
	} {
		if got := gatewayName(tc.version, "/tmp/l1gw", tc.tree); got != tc.want {
			t.Errorf("gatewayName(%q, /tmp/l1gw, %q) = %q; want %q", tc.version, tc.tree, got, tc.want)
		}
	}
}

// TestWatchRedisSeesAStall: the probe run beside scenario 11's flood sees
// a Redis that stops answering, and a flood failure then says what it saw;
// a probe that cannot connect says that instead.
func TestWatchRedisSeesAStall(t *testing.T) {
	n := redistest.Server(t)
	stop := watchRedis(n.Addr())
	time.Sleep(50 * time.Millisecond)
	n.Stall()
	time.Sleep(200 * time.Millisecond)
	n.Resume()
	time.Sleep(50 * time.Millisecond)
	res, err := stop()
	if err != nil || res.Pings == 0 || res.WorstMs < 150 {
		t.Fatalf("probe of a Redis stalled 200 ms: %+v, %v; want PINGs answered and one of at least 150 ms", res, err)
	}
	f := &FloodResult{DegradedHealthy: 3}
	f.sawRedis(res, err)
	fits := fmt.Sprintf("a silence of up to %.2f ms fits it", res.WorstMs+5+res.WorstLateMs)
	if fails := checkFlood(f); len(fails) != 1 || !strings.Contains(fails[0], fmt.Sprintf("meanwhile Redis' worst PING took %.2f ms", res.WorstMs)) || !strings.Contains(fails[0], fits) {
		t.Errorf("flood failure: %q; want one, with the probe's worst PING and %q", fails, fits)
	}
	down := &FloodResult{AttackDegradedHealthy: 1}
	down.sawRedis(watchRedis("127.0.0.1:1")())
	if fails := checkFlood(down); len(fails) != 1 || !strings.Contains(fails[0], "Redis' probe failed: ") {
		t.Errorf("flood failure with no Redis to probe: %q; want one saying the probe failed", fails)
	}
}

// TestHealthyPhasesProbeRedis: the phase before any fault and each phase
// from a heal on are probed, a fault phase is not; a Redis stalled in a
// probed phase shows in its record, and a late recovery's failure then
// says what the probe of that phase saw.
func TestHealthyPhasesProbeRedis(t *testing.T) {
	n := redistest.Server(t)
	r := &chaosRun{t: t, node: n}
	r.mark("before", false, false)
	<-r.watch.started
	time.Sleep(30 * time.Millisecond)
	r.mark("stall", true, false)
	time.Sleep(30 * time.Millisecond)
	r.mark("after", false, true)
	<-r.watch.started // the probes start in the background
	n.Stall()
	time.Sleep(150 * time.Millisecond)
	n.Resume()
	time.Sleep(30 * time.Millisecond)
	r.stopWatch()
	before, stall, after := r.seen[0], r.seen[1], r.seen[2]
	if before == nil || before.Error != "" || !slices.Equal(before.Nodes, []string{n.Addr()}) || before.PingMaxMs <= 0 {
		t.Fatalf("phase before: %+v; want %s probed, its PINGs answered", before, n.Addr())
	}
	if stall != nil {
		t.Errorf("the fault phase was probed: %+v; want no probe", stall)
	}
	if after == nil || after.PingMaxMs < 100 {
		t.Fatalf("phase after, Redis stalled 150 ms: %+v; want a PING of at least 100 ms", after)
	}
	res := &ChaosResult{
		Phases:     []PhaseResult{{Name: "before", Redis: before}, {Name: "stall"}, {Name: "after", Redis: after}},
		Recoveries: []Recovery{{After: "after"}},
	}
	fails := check(chaosTiming{recoverWithin: 2 * time.Second}, res)
	want := "meanwhile Redis' probes saw, after: " + after.String()
	if len(fails) != 1 || !strings.HasSuffix(fails[0], want) {
		t.Errorf("failures %q; want one, ending %q", fails, want)
	}
}

// TestGrowthLeavesIdleWorkersOut: goroutines grown past the slack are
// growth while the load generator kept its connections, and say nothing
// once it opened many more (fasthttp's idle workers of the connections
// served meanwhile, as in 4-sentinel-failover-repeated once: 28 → 49
// goroutines, 8 → 85 client connections); fds still count then.
func TestGrowthLeavesIdleWorkersOut(t *testing.T) {
	before := &Resources{Goroutines: 28, FDs: 11, ClientConns: 8, RedisConns: 16}
	for _, c := range []struct {
		after Resources
		grew  bool
	}{
		{Resources{Goroutines: 49, FDs: 11, ClientConns: 8, RedisConns: 16}, true},
		{Resources{Goroutines: 49, FDs: 11, ClientConns: 85, RedisConns: 15}, false},
		{Resources{Goroutines: 49, FDs: 30, ClientConns: 85, RedisConns: 15}, true},
		{Resources{Goroutines: 48, FDs: 21, ClientConns: 8, RedisConns: 16}, false},
	} {
		r := &ChaosResult{Before: before, After: &c.after}
		if g := r.growth(); (g != "") != c.grew {
			t.Errorf("%+v after %+v: growth %q; want growth %v", c.after, *before, g, c.grew)
		}
	}
}

// TestPeakAdmittedOKCountsWhatWasCertainlyDecidedWithinAWindow: ok
// admissions count together only when all were decided within one
// window, between the first's send and the last's reply. Counted by send
// time, a set sent within 950 ms whose last requests were slowed past
// the window's end (decided in the next one, as Redis allows) counted as
// an over-admission on a busy machine.
func TestPeakAdmittedOKCountsWhatWasCertainlyDecidedWithinAWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var ss []sample
	ok := func(at, latency time.Duration) {
		ss = append(ss, sample{at: t0.Add(at), latency: latency, code: 200, state: stateOK, limited: true})
	}
	ok(0, time.Millisecond)
	for i := range 50 { // sent within 950 ms of the first, replies after its window
		ok(900*time.Millisecond+time.Duration(i)*time.Millisecond, 150*time.Millisecond)
	}
	if got := peakAdmittedOK(ss, time.Second); got != 50 {
		t.Fatalf("50 requests slowed past the first's window beside it: peak %d; want 50", got)
	}
	if got := peakSentOK(ss, time.Second); got != 51 {
		t.Fatalf("sent within one window: %d; want 51, the bound above (the run's notes say when the two part)", got)
	}
	ok(910*time.Millisecond, 5*time.Millisecond) // a fast one within the first's window: 2 there, 51 in the next
	if got := peakAdmittedOK(ss, time.Second); got != 51 {
		t.Fatalf("with one more fast request in the slow ones' window: peak %d; want 51", got)
	}
}

// TestBulkDegradedIsSplitByPhase: a healthy shard's degraded responses are
// counted in the phase each was sent in, so that one before the fault is
// not put down to the failover.
func TestBulkDegradedIsSplitByPhase(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	marks := []phaseMark{{name: "before", at: t0}, {name: "primary-killed", at: t0.Add(5 * time.Second), fault: true}, {name: "after", at: t0.Add(8 * time.Second), heal: true}}
	at := func(ms int, state rlState, limited bool) sample {
		return sample{at: t0.Add(time.Duration(ms) * time.Millisecond), state: state, limited: limited}
	}
	ss := []sample{
		at(100, stateDegraded, false), at(200, stateOK, false), at(4999, stateDegraded, false),
		at(5000, stateDegraded, true), at(6000, stateOK, false),
		at(8000, stateDegraded, false), at(9000, stateDegraded, false),
	}
	got := countByPhase(marks, ss, bulkDegraded)
	want := []PhaseCount{{"before", 2}, {"primary-killed", 0}, {"after", 2}}
	if !slices.Equal(got, want) {
		t.Fatalf("countByPhase: %v; want %v", got, want)
	}
	res := &ChaosResult{BulkOnHealthyShard: true, BulkDegraded: 4, BulkDegradedByPhase: got}
	fails := check(chaosTiming{}, res)
	if len(fails) == 0 || !strings.Contains(strings.Join(fails, "\n"), "4 degraded responses (by phase: before 2, primary-killed 0, after 2)") {
		t.Fatalf("check: %q; want the count split by phase", fails)
	}
}
