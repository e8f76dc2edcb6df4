package limiter

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
)

// TestWriteClientRefusesANonPrimary: the hook on every write connection
// refuses a node whose ROLE is not master (a stale primary Sentinel demoted,
// or a replica it names before promoting it).
func TestWriteClientRefusesANonPrimary(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1})
	for _, tc := range []struct {
		name string
		node *redistest.Node
		want error
	}{
		{"primary", topo.Primary(), nil},
		{"replica", topo.Replicas()[0], ErrNotPrimary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: tc.node.Addr(), OnConnect: mustBeMaster, MaxRetries: -1, DialTimeout: time.Second})
			defer c.Close()
			err := c.Ping(context.Background()).Err()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("PING through the write hook on the %s: %v; want %v", tc.name, err, tc.want)
			}
		})
	}
}

// TestReplicaDialRefusesAnUnlinkedNode: a connection to read decisions
// from takes a replica whose link to its primary is up, and refuses a
// primary and a replica whose link is down (it serves what data it has).
func TestReplicaDialRefusesAnUnlinkedNode(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1})
	unlinked := redistest.Server(t)
	// Port 1 refuses: the node stays a replica whose link is down.
	if err := unlinked.Client(t).ReplicaOf(context.Background(), "127.0.0.1", "1").Err(); err != nil {
		t.Fatal(err)
	}
	o := &connOptions{dialTimeout: time.Second, linked: true}
	for _, tc := range []struct {
		name string
		node *redistest.Node
		want error
	}{
		{"linked replica", topo.Replicas()[0], nil},
		{"primary", topo.Primary(), ErrReplicaUnlinked},
		{"replica with its link down", unlinked, ErrReplicaUnlinked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialConn(tc.node.Addr(), o, nil)
			if err == nil {
				c.close()
			}
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("dial the %s to read decisions: %v; want %v", tc.name, err, tc.want)
			}
		})
	}
}

// sentinelClientsOfTwo are Sentinel clients of topo, once its sentinel
// reports both its replicas healthy (it learns of them from the primary).
func sentinelClientsOfTwo(t *testing.T, topo *redistest.Topo) *Clients {
	t.Helper()
	o := RedisOptions{Mode: ModeSentinel, Addrs: topo.SentinelAddrs(), MasterName: "mymaster",
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, PoolTimeout: time.Second}
	c, err := NewClients(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for start := time.Now(); healthyReplicas(c.sentinels) < 2; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the sentinel reports %d healthy replicas 10 s after start; want 2", healthyReplicas(c.sentinels))
		}
	}
	return c
}

// TestSentinelPassesOverARefusedReplica: a replica a dial refused (not
// linked to its primary: restarted, which a sentinel sees only at its next
// INFO of it, up to 10 s later) is no longer named while the sentinels
// report another healthy; before, it stayed chosen and every dial went
// back to it (found by a review).
func TestSentinelPassesOverARefusedReplica(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 2, Sentinels: 1})
	c := sentinelClientsOfTwo(t, topo)
	first, err := c.sentinels.replica()
	if err != nil {
		t.Fatal(err)
	}
	c.sentinels.refused(first)
	for range 20 {
		if a, err := c.sentinels.replica(); err != nil || a == first {
			t.Fatalf("replica %q (%v) after a dial refused it; want the other", a, err)
		}
	}
}

// TestSentinelReplicaIsNamedAgain: the sentinels' replica for decisions is
// the one named before while they report it healthy, so every connection
// of the replica pipe reads the same replica; once it is down, another.
func TestSentinelReplicaIsNamedAgain(t *testing.T) {
	topo := redistest.Topology(t, redistest.Options{Replicas: 2, Sentinels: 1, DownAfter: 300 * time.Millisecond})
	c := sentinelClientsOfTwo(t, topo)
	first, err := c.sentinels.replica()
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if a, err := c.sentinels.replica(); err != nil || a != first {
			t.Fatalf("replica %q (%v); want %q again", a, err, first)
		}
	}
	for _, n := range topo.Replicas() {
		if n.Addr() == first {
			n.Stop()
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, err := c.sentinels.replica()
		if err == nil && a != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %q (%v) 10 s after %s stopped; want the other one", a, err, first)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// healthyReplicas is how many replicas s's first sentinel reports up and
// linked.
func healthyReplicas(s *sentinels) int {
	rs, err := s.clients[0].Replicas(context.Background(), s.master).Result()
	if err != nil {
		return 0
	}
	return len(upReplicas(rs))
}
