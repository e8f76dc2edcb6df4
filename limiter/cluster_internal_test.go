package limiter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
)

// TestClusterRouteMarksPromotedMasters: the first slot map's masters are
// the route's own; a master met later (on the decision path or by a
// sweep), or named again after a sweep found it gone, may lack records a
// failover lost and is marked; a read route marks nothing.
func TestClusterRouteMarksPromotedMasters(t *testing.T) {
	marked := func(r *clusterRoute, addr string) bool {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return r.pipes[addr] != nil && r.pipes[addr].health.lostAt.Load() != 0
	}
	set := func(addrs ...string) map[string]bool {
		m := map[string]bool{}
		for _, a := range addrs {
			m[a] = true
		}
		return m
	}
	r := newClusterRoute(nil, testCfg(), false)
	r.pipeAt("a:1") // before the first map (Connect failed): the route's own
	r.meet(set("a:1", "b:1"))
	r.meet(set("a:1", "b:1")) // a sweep finding the same map
	for _, addr := range []string{"a:1", "b:1"} {
		if marked(r, addr) {
			t.Fatalf("%s, in the first slot map, is marked promoted", addr)
		}
	}
	r.pipeAt("c:1") // a failover's new master, met by a decision
	if !marked(r, "c:1") {
		t.Fatal("a master met after the first map is not marked promoted")
	}
	r.meet(set("a:1", "c:1", "d:1")) // d met by a sweep first
	if !marked(r, "d:1") || marked(r, "a:1") {
		t.Fatalf("sweep: d marked %v, a marked %v; want d only", marked(r, "d:1"), marked(r, "a:1"))
	}
	r.gone = set("b:1") // the last sweep did not find b
	r.meet(set("a:1", "b:1", "c:1", "d:1"))
	if !marked(r, "b:1") {
		t.Fatal("a master named again after a sweep found it gone (a failback) is not marked")
	}

	ro := newClusterRoute(nil, testCfg(), true)
	ro.meet(set("a:2"))
	ro.pipeAt("b:2")
	if marked(ro, "b:2") {
		t.Fatal("a read route marked a replica it met later")
	}
}

// TestClusterReadsOneReplicaAMaster: with two replicas a master, go-redis
// picks one at random per call; the decisions' read route keeps the one
// it read first, until a read on that one fails.
func TestClusterReadsOneReplicaAMaster(t *testing.T) {
	t.Parallel()
	cl := redistest.Cluster(t, redistest.ClusterOptions{Primaries: 1, ReplicasPerPrimary: 2})
	o := RedisOptions{Mode: ModeCluster, Addrs: cl.Addrs(), DialTimeout: time.Second, ReadTimeout: time.Second,
		WriteTimeout: time.Second, PoolTimeout: time.Second}
	c, err := NewClients(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := newClusterRoute(c.Replica.(*redis.ClusterClient), &pipeConfig{budget: time.Second}, true)
	t.Cleanup(r.close)
	testkit.Eventually(t, 20*time.Second, func() error { // both replicas in go-redis' slot map
		r.cl.ReloadState(context.Background())
		named, err := r.named(context.Background())
		if err != nil || len(named) != 2 {
			return fmt.Errorf("replicas named: %v (%v); want 2", named, err)
		}
		return nil
	})
	first, err := r.pipeFor("acme")
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if p, err := r.pipeFor("acme"); err != nil || p != first {
			t.Fatalf("pipe %p (%v); want %p again", p, err, first)
		}
	}
	other := r.pipeAt("127.0.0.1:1") // a pipe no pin names
	r.failed(other, ErrBudget)
	if p, err := r.pipeFor("acme"); err != nil || p != first {
		t.Fatalf("pipe %p (%v) after another node failed; want %p again", p, err, first)
	}
	seen, p := map[*pipe]bool{}, first
	for range 30 {
		r.failed(p, ErrBudget) // the pinned replica failed a read
		if p, err = r.pipeFor("acme"); err != nil {
			t.Fatal(err)
		}
		seen[p] = true
	}
	if len(seen) != 2 {
		t.Fatalf("%d replicas read over 30 failed reads; want both (go-redis' pick anew)", len(seen))
	}
}
