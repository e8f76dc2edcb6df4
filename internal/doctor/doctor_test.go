package doctor_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/doctor"
	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
)

// redisOptions are generous: the tests share two cores with the race
// detector and other Redis processes.
func redisOptions(mode string, addrs ...string) limiter.RedisOptions {
	return limiter.RedisOptions{
		Mode: mode, Addrs: addrs, MasterName: "mymaster",
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		PoolTimeout: time.Second, MaxRetries: 1,
	}
}

func run(t *testing.T, o doctor.Options) (*doctor.Report, string) {
	t.Helper()
	c, err := limiter.NewClients(o.Redis)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep := doctor.Run(ctx, c, o)
	var out bytes.Buffer
	rep.Write(&out)
	return rep, out.String()
}

// production applies README "Production Redis settings" to a data node.
func production(t *testing.T, n *redistest.Node) {
	t.Helper()
	err := n.Client(t).ConfigSet(context.Background(), "appendonly", "yes").Err()
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"tcp-keepalive", "60"}, {"timeout", "300"},
		{"min-replicas-to-write", "1"}, {"min-replicas-max-lag", "10"}} {
		if err == nil {
			err = n.Client(t).ConfigSet(context.Background(), kv[0], kv[1]).Err()
		}
	}
	if err != nil {
		t.Fatalf("CONFIG SET on %s: %v", n, err)
	}
}

func TestCleanSentinelTopologyHasNothingToReport(t *testing.T) {
	tp := redistest.Topology(t, redistest.Options{Replicas: 2, Sentinels: 3})
	for _, n := range tp.Nodes() {
		production(t, n)
	}
	// The budget is generous: loopback under the race detector on a loaded
	// machine is not what this test measures.
	rep, out := run(t, doctor.Options{Redis: redisOptions(limiter.ModeSentinel, tp.SentinelAddrs()...), Budget: time.Second})
	if rep.Count(doctor.Error) != 0 || rep.Count(doctor.Warn) != 0 {
		t.Fatalf("got %d error(s), %d warning(s); want none:\n%s", rep.Count(doctor.Error), rep.Count(doctor.Warn), out)
	}
	primary := tp.Primary().Addr()
	want := []string{
		"sentinels: 3 of 3 answer; CKQUORUM mymaster is OK on each",
		"ROLE of the primary " + primary + ": master, 2 replica(s) connected",
		"settings of " + primary + ": maxmemory-policy noeviction, timeout 300, tcp-keepalive 60, appendonly yes, min-replicas-to-write 1",
		"scripts: decide, usage, peek and record load on the primary",
		"round trip to the primary: p50 ",
	}
	for _, r := range tp.Replicas() {
		want = append(want, "replica "+r.Addr()+" of "+primary+": link up, lag ", "settings of "+r.Addr()+": maxmemory-policy noeviction")
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
}

// slowProxy forwards TCP to addr on loopback, holding each chunk from the
// client delay before passing it on: a Redis that far away.
func slowProxy(t *testing.T, addr string, delay time.Duration) string {
	return testkit.Listen(t, func(c net.Conn) {
		defer c.Close()
		up, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer up.Close()
		go io.Copy(c, up) //nolint:errcheck // ends when either side closes
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			time.Sleep(delay)
			if _, err := up.Write(buf[:n]); err != nil {
				return
			}
		}
	})
}

func TestStandaloneProblemsAreEachReported(t *testing.T) {
	n := redistest.Server(t)
	if err := n.Client(t).ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	proxy := slowProxy(t, n.Addr(), 20*time.Millisecond)
	rep, out := run(t, doctor.Options{Redis: redisOptions(limiter.ModeStandalone, proxy), Budget: 10 * time.Millisecond, Pings: 50})
	cases := []struct {
		sev  doctor.Severity
		what string
		fix  string
	}{
		{doctor.Error, "maxmemory-policy allkeys-lru on " + proxy + ": evicts live limits", "CONFIG SET maxmemory-policy noeviction"},
		{doctor.Error, "over ratelimit.budget 10ms", "raise ratelimit.budget"},
		{doctor.Warn, "appendonly no on " + proxy, "CONFIG SET appendonly yes"},
		{doctor.OK, "ROLE of the primary " + proxy + ": master, 0 replica(s)", ""},
		{doctor.OK, "scripts: decide, usage, peek and record load", ""},
	}
	for _, tc := range cases {
		if !has(rep, tc.sev, tc.what, tc.fix) {
			t.Errorf("no %s finding with %q and fix %q:\n%s", tc.sev, tc.what, tc.fix, out)
		}
	}
	if got := rep.Count(doctor.Error); got != 2 {
		t.Errorf("got %d errors; want 2:\n%s", got, out)
	}
	if strings.Contains(out, "no replica") {
		t.Errorf("standalone expects no replica, but the report warns of none:\n%s", out)
	}
	if !strings.Contains(out, "error  maxmemory-policy allkeys-lru on "+proxy) || !strings.HasSuffix(out, "2 error(s)\n") {
		t.Errorf("report lines or summary not as documented:\n%s", out)
	}
}

func has(rep *doctor.Report, sev doctor.Severity, what, fix string) bool {
	for _, f := range rep.Findings {
		if f.Severity == sev && strings.Contains(f.What, what) && strings.Contains(f.Fix, fix) {
			return true
		}
	}
	return false
}

func TestSentinelTopologyWithNodesDown(t *testing.T) {
	tp := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3})
	downSentinel, downReplica := tp.Sentinels()[0], tp.Replicas()[0]
	downSentinel.Kill()
	downReplica.Kill()
	rep, out := run(t, doctor.Options{Redis: redisOptions(limiter.ModeSentinel, tp.SentinelAddrs()...), Budget: time.Second, Pings: 20})
	cases := []struct {
		sev  doctor.Severity
		what string
		fix  string
	}{
		{doctor.Warn, "sentinel " + downSentinel.Addr() + " does not give the primary of mymaster", "take it out of redis.addrs"},
		{doctor.OK, "sentinels: 2 of 3 answer; CKQUORUM mymaster is OK on each", ""},
		{doctor.OK, "ROLE of the primary " + tp.Primary().Addr() + ": master, 0 replica(s) connected", ""},
		{doctor.Warn, "replica " + downReplica.Addr() + " does not answer ROLE", "SENTINEL RESET mymaster"},
		{doctor.Warn, "min-replicas-to-write 0 on " + tp.Primary().Addr(), "CONFIG SET min-replicas-to-write 1"},
	}
	for _, tc := range cases {
		if !has(rep, tc.sev, tc.what, tc.fix) {
			t.Errorf("no %s finding with %q and fix %q:\n%s", tc.sev, tc.what, tc.fix, out)
		}
	}
	if got := rep.Count(doctor.Error); got != 0 {
		t.Errorf("got %d errors; want none (a majority of sentinels and the primary answer):\n%s", got, out)
	}
}

func TestClusterEveryShardIsChecked(t *testing.T) {
	cl := redistest.Cluster(t, redistest.ClusterOptions{})
	rep, out := run(t, doctor.Options{Redis: redisOptions(limiter.ModeCluster, cl.Addrs()...), Budget: time.Second, Pings: 20})
	for _, p := range cl.Primaries() {
		if !has(rep, doctor.OK, "ROLE of the primary "+p.Addr()+": master, 1 replica(s) connected", "") {
			t.Errorf("no ROLE line for the primary %s:\n%s", p.Addr(), out)
		}
		if !has(rep, doctor.Warn, "cluster-require-full-coverage yes on "+p.Addr(), "cluster-require-full-coverage no") {
			t.Errorf("no cluster-require-full-coverage warning for %s:\n%s", p.Addr(), out)
		}
	}
	if !has(rep, doctor.OK, "scripts: decide, usage, peek and record load on every primary", "") {
		t.Errorf("no scripts line for every primary:\n%s", out)
	}
	for _, r := range cl.Replicas() {
		if !has(rep, doctor.OK, "replica "+r.Addr()+" of ", "") || !strings.Contains(out, "replica "+r.Addr()+" of 127.0.0.1:") {
			t.Errorf("no link line for the replica %s:\n%s", r.Addr(), out)
		}
	}
	if got := rep.Count(doctor.Error); got != 0 {
		t.Errorf("got %d errors; want none:\n%s", got, out)
	}
}

// TestLeastPrivilegeACL: with the README's ACL for standalone (+@all
// -@dangerous +info: no ROLE), the primary's role is read from INFO
// replication and nothing is reported against the ACL; a volatile-*
// policy is an error, as the README says.
func TestLeastPrivilegeACL(t *testing.T) {
	n := redistest.Server(t)
	c := n.Client(t)
	for _, args := range [][]any{{"ACL", "SETUSER", "gw", "on", ">pw", "~*", "&*", "+@all", "-@dangerous", "+info"},
		{"CONFIG", "SET", "maxmemory-policy", "volatile-lru"}} {
		if err := c.Do(context.Background(), args...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	o := redisOptions(limiter.ModeStandalone, n.Addr())
	o.Username, o.Password = "gw", "pw"
	rep, out := run(t, doctor.Options{Redis: o, Budget: time.Second, Pings: 20})
	if !has(rep, doctor.OK, "ROLE of the primary "+n.Addr()+": master", "") {
		t.Errorf("the primary's role not read without +role:\n%s", out)
	}
	if strings.Contains(out, "NOPERM") && !strings.Contains(out, "CONFIG GET") {
		t.Errorf("a NOPERM reported other than for CONFIG GET:\n%s", out)
	}
	if rep.Count(doctor.Error) != 0 {
		t.Errorf("errors with a least-privilege user:\n%s", out)
	}
	// CONFIG GET is @dangerous: the policy can only be judged as admin.
	o.Username, o.Password = "", ""
	rep, out = run(t, doctor.Options{Redis: o, Budget: time.Second, Pings: 20})
	if !has(rep, doctor.Error, "maxmemory-policy volatile-lru", "noeviction") {
		t.Errorf("volatile-lru not an error:\n%s", out)
	}
}
