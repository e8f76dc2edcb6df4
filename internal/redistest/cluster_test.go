package redistest_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
)

func TestClusterClientScriptAndFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := time.Now()
	ct := redistest.Cluster(t, redistest.ClusterOptions{Primaries: 3, ReplicasPerPrimary: 1})
	t.Logf("Cluster took %v", time.Since(start))
	nodes := ct.Nodes()
	if ps, rs := ct.Primaries(), ct.Replicas(); !slices.Equal(ps, nodes[:3]) || !slices.Equal(rs, nodes[3:]) {
		t.Fatalf("Primaries() = %v, Replicas() = %v; want %v and %v", ps, rs, nodes[:3], nodes[3:])
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: ct.Addrs()})
	t.Cleanup(func() { _ = cc.Close() })

	owners := make(map[*redistest.Node]bool)
	for i := range 8 {
		key, val := fmt.Sprintf("{h%d}k", i), strconv.Itoa(i)
		if err := cc.Set(ctx, key, val, 0).Err(); err != nil {
			t.Fatalf("cluster SET %s: %v", key, err)
		}
		p := ct.PrimaryFor(t, key)
		owners[p] = true
		if got, err := p.Client(t).Get(ctx, key).Result(); err != nil || got != val {
			t.Fatalf("GET %s on PrimaryFor = %s: %q, %v; want %q", key, p, got, err, val)
		}
		if got, err := cc.Get(ctx, key).Result(); err != nil || got != val {
			t.Fatalf("cluster GET %s = %q, %v; want %q", key, got, err, val)
		}
	}
	if len(owners) < 2 {
		t.Fatalf("8 hash tags landed on %d primaries; want at least 2", len(owners))
	}
	checkClusterScript(t, cc, "1")

	old := ct.PrimaryFor(t, "{t}a")
	replica := replicaOf(t, ct, old)
	start = time.Now()
	ct.Failover(t, replica)
	t.Logf("Failover took %v", time.Since(start))
	if got := ct.PrimaryFor(t, "{t}a"); got != replica {
		t.Fatalf("PrimaryFor({t}a) after Failover = %s; want %s", got, replica)
	}
	if got := roleOf(t, old.Client(t)); len(got) < 3 || got[0] != "slave" || fmt.Sprint(got[2]) != strconv.Itoa(replica.Port()) {
		t.Fatalf("ROLE of old primary %s = %v; want slave of port %d", old, got, replica.Port())
	}
	if !slices.Contains(ct.Primaries(), replica) || !slices.Contains(ct.Replicas(), old) {
		t.Fatalf("Primaries() = %v, Replicas() = %v; want %s a primary and %s a replica", ct.Primaries(), ct.Replicas(), replica, old)
	}
	start = time.Now()
	eventually(t, 10*time.Second, "cluster client after failover", func() error {
		if got, err := cc.Get(ctx, "{t}b").Result(); err != nil || got != "b1" {
			return fmt.Errorf("GET {t}b = %q, %v; want \"b1\" (written before the failover)", got, err)
		}
		return cc.Set(ctx, "{t}c", "after", 0).Err()
	})
	t.Logf("cluster client recovered in %v", time.Since(start))
	checkClusterScript(t, cc, "2")
}

// checkClusterScript runs a script that writes and reads two keys sharing
// the hash tag {t}.
func checkClusterScript(t *testing.T, cc *redis.ClusterClient, suffix string) {
	t.Helper()
	const script = `redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return redis.call('MGET', KEYS[1], KEYS[2])`
	a, b := "a"+suffix, "b"+suffix
	got, err := cc.Eval(context.Background(), script, []string{"{t}a", "{t}b"}, a, b).StringSlice()
	if err != nil || !slices.Equal(got, []string{a, b}) {
		t.Fatalf("EVAL on {t}a and {t}b = %v, %v; want [%s %s]", got, err, a, b)
	}
}

func TestClusterKillStallRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ct := redistest.Cluster(t, redistest.ClusterOptions{})
	if got := len(ct.Nodes()); got != 6 {
		t.Fatalf("len(Nodes()) with default options = %d; want 6", got)
	}

	r := ct.Replicas()[0]
	r.Stall()
	start := time.Now()
	ct.WaitHealthy(t) // the others flag it fail
	t.Logf("stalled replica flagged fail in %v", time.Since(start))
	r.Resume()
	ct.WaitHealthy(t)
	r.Kill()
	r.Restart(t)
	if got := roleOf(t, r.Client(t)); got[0] != "slave" {
		t.Fatalf("ROLE of restarted replica %s = %v; want slave", r, got)
	}

	p := ct.Primaries()[0]
	key := keyOn(t, ct, p)
	pc := p.Client(t)
	mustSetGet(t, pc, key, "before-kill")
	if n, err := pc.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 on %s = %d, %v; want 1 replica", p, n, err)
	}
	p.Kill()
	start = time.Now()
	ct.WaitHealthy(t) // the cluster fails p over to its replica
	t.Logf("replica took over from the killed primary in %v", time.Since(start))
	np := ct.PrimaryFor(t, key)
	if np == p {
		t.Fatalf("PrimaryFor(%s) after killing %s is still it", key, p)
	}
	if got, err := np.Client(t).Get(ctx, key).Result(); err != nil || got != "before-kill" {
		t.Fatalf("GET %s on new primary %s = %q, %v; want \"before-kill\"", key, np, got, err)
	}
	p.Restart(t)
	if got := roleOf(t, p.Client(t)); len(got) < 3 || got[0] != "slave" || fmt.Sprint(got[2]) != strconv.Itoa(np.Port()) {
		t.Fatalf("ROLE of restarted old primary %s = %v; want slave of port %d", p, got, np.Port())
	}
}

// replicaOf returns a replica of primary p, per the replicas' ROLE.
func replicaOf(t *testing.T, ct *redistest.ClusterTopo, p *redistest.Node) *redistest.Node {
	t.Helper()
	for _, r := range ct.Replicas() {
		if got := roleOf(t, r.Client(t)); len(got) >= 3 && fmt.Sprint(got[2]) == strconv.Itoa(p.Port()) {
			return r
		}
	}
	t.Fatalf("no replica of %s among %v", p, ct.Replicas())
	return nil
}

// keyOn returns a key whose slot primary p serves.
func keyOn(t *testing.T, ct *redistest.ClusterTopo, p *redistest.Node) string {
	t.Helper()
	for i := range 100 {
		if key := fmt.Sprintf("{k%d}", i); ct.PrimaryFor(t, key) == p {
			return key
		}
	}
	t.Fatalf("none of 100 keys lands on %s", p)
	return ""
}
