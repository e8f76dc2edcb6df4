package redistest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
)

func TestServerStallKillRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := redistest.Server(t)
	c := redis.NewClient(&redis.Options{Addr: n.Addr(), ReadTimeout: 200 * time.Millisecond, MaxRetries: -1, PoolSize: 1})
	t.Cleanup(func() { _ = c.Close() })

	mustSetGet(t, c, "k", "v1")

	n.Stall()
	start := time.Now()
	err := c.Get(ctx, "k").Err()
	if !isTimeout(err) {
		t.Fatalf("GET on a stalled server: err = %v; want a timeout", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("GET on a stalled server took %v; want about the 200ms ReadTimeout", took)
	}
	n.Resume()
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v1" {
		t.Fatalf("GET after Resume = %q, %v; want \"v1\", nil", got, err)
	}

	port := n.Port()
	n.Kill()
	if n.Running() {
		t.Fatalf("Running() = true after Kill")
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatalf("PING after Kill succeeded; want an error")
	}
	n.Restart(t)
	if n.Port() != port {
		t.Fatalf("port after Restart = %d; want %d", n.Port(), port)
	}
	// A fresh client: with PoolSize 1, go-redis answers with the cached dial
	// error for up to a second after one failed dial.
	c = n.Client(t)
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET of the old key after Restart: err = %v; want redis.Nil (a fresh process without persistence)", err)
	}
	mustSetGet(t, c, "k", "v2")

	n.Stop()
	if n.Running() {
		t.Fatalf("Running() = true after Stop")
	}
	n.Restart(t)
	mustSetGet(t, n.Client(t), "k", "v3")
}

func TestServerCleanupKillsProcess(t *testing.T) {
	t.Parallel()
	var addr string
	t.Run("inner", func(t *testing.T) {
		n := redistest.Server(t)
		addr = n.Addr()
		n.Stall() // cleanup must resume, then kill
	})
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = conn.Close()
		t.Fatalf("dial %s after the subtest's cleanup succeeded; want connection refused", addr)
	}
}

func TestTopologyReplicationAndFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := time.Now()
	tp := redistest.Topology(t, redistest.Options{Replicas: 2, Sentinels: 3})
	t.Logf("Topology took %v", time.Since(start))
	old := tp.Primary()
	if old != tp.Nodes()[0] {
		t.Fatalf("Primary() = %s; want the first node %s", old, tp.Nodes()[0])
	}
	if got := len(tp.Replicas()); got != 2 {
		t.Fatalf("len(Replicas()) = %d; want 2", got)
	}
	mustSetGet(t, old.Client(t), "k", "v")
	for _, r := range tp.Replicas() {
		rc := r.Client(t)
		eventually(t, 5*time.Second, "key on replica "+r.String(), func() error {
			got, err := rc.Get(ctx, "k").Result()
			if err != nil || got != "v" {
				return fmt.Errorf("GET k = %q, %v; want \"v\"", got, err)
			}
			return nil
		})
	}
	for _, s := range tp.Sentinels() {
		if got := masterAddr(t, s, tp.MasterName()); got != old.Addr() {
			t.Fatalf("%s names primary %s; want %s", s, got, old.Addr())
		}
	}

	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: tp.MasterName(), SentinelAddrs: tp.SentinelAddrs()})
	t.Cleanup(func() { _ = fc.Close() })
	checkFailoverClient(t, fc, old)

	start = time.Now()
	np := tp.Failover(t)
	t.Logf("Failover took %v", time.Since(start))
	if np == old {
		t.Fatalf("Failover returned the old primary %s", old)
	}
	if got := roleOf(t, np.Client(t)); got[0] != "master" {
		t.Fatalf("ROLE of new primary %s = %v; want master", np, got)
	}
	if tp.Primary() != np {
		t.Fatalf("Primary() after Failover = %s; want %s", tp.Primary(), np)
	}
	mustSetGet(t, np.Client(t), "after", "1")
	checkFailoverClient(t, fc, np)

	tp.WaitReplicas(t) // the sentinels demote the old primary
	if got := roleOf(t, old.Client(t)); len(got) < 3 || got[0] != "slave" || fmt.Sprint(got[2]) != strconv.Itoa(np.Port()) {
		t.Fatalf("ROLE of old primary %s after WaitReplicas = %v; want slave of port %d", old, got, np.Port())
	}
}

func TestTopologyKillPrimary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tp := redistest.Topology(t, redistest.Options{Replicas: 2, Sentinels: 3, DownAfter: time.Second})
	old := tp.Primary()
	old.Kill()
	start := time.Now()
	np := tp.WaitPrimary(t, old.Addr(), 30*time.Second)
	t.Logf("WaitPrimary after Kill took %v", time.Since(start))
	if np == old {
		t.Fatalf("WaitPrimary returned the killed primary %s", old)
	}
	mustSetGet(t, np.Client(t), "k", "after-kill")

	old.Restart(t)
	got := roleOf(t, old.Client(t))
	if len(got) < 3 || got[0] != "slave" || fmt.Sprint(got[2]) != strconv.Itoa(np.Port()) {
		t.Fatalf("ROLE of restarted %s = %v; want slave of port %d", old, got, np.Port())
	}
	oc := old.Client(t)
	eventually(t, 5*time.Second, "key on restarted "+old.String(), func() error {
		v, err := oc.Get(ctx, "k").Result()
		if err != nil || v != "after-kill" {
			return fmt.Errorf("GET k = %q, %v; want \"after-kill\"", v, err)
		}
		return nil
	})
	if tp.Primary() != np {
		t.Fatalf("Primary() after restarting the old one = %s; want %s", tp.Primary(), np)
	}

	s := tp.Sentinels()[0]
	s.Stop()
	if s.Running() {
		t.Fatalf("Running() = true after Stop of %s", s)
	}
	s.Restart(t) // from the config file the sentinel rewrote
	if got := masterAddr(t, s, tp.MasterName()); got != np.Addr() {
		t.Fatalf("restarted %s names primary %s; want %s", s, got, np.Addr())
	}
}

func TestTopologyWithoutSentinels(t *testing.T) {
	t.Parallel()
	tp := redistest.Topology(t, redistest.Options{Replicas: 1})
	if got := len(tp.SentinelAddrs()); got != 0 {
		t.Fatalf("len(SentinelAddrs()) = %d; want 0", got)
	}
	p, rs := tp.Primary(), tp.Replicas()
	if p != tp.Nodes()[0] || len(rs) != 1 || rs[0] != tp.Nodes()[1] {
		t.Fatalf("Primary() = %s, Replicas() = %v; want %s and [%s]", p, rs, tp.Nodes()[0], tp.Nodes()[1])
	}
	mustSetGet(t, p.Client(t), "k", "v")
	rc := rs[0].Client(t)
	eventually(t, 5*time.Second, "key on replica "+rs[0].String(), func() error {
		got, err := rc.Get(context.Background(), "k").Result()
		if err != nil || got != "v" {
			return fmt.Errorf("GET k = %q, %v; want \"v\"", got, err)
		}
		return nil
	})
	rs[0].Kill()
	rs[0].Restart(t) // comes back as a replica of p, link up
	if got := roleOf(t, rs[0].Client(t)); got[0] != "slave" {
		t.Fatalf("ROLE of restarted replica %s = %v; want slave", rs[0], got)
	}
}

// checkFailoverClient waits until fc writes and is connected to want.
func checkFailoverClient(t *testing.T, fc *redis.Client, want *redistest.Node) {
	t.Helper()
	ctx := context.Background()
	eventually(t, 10*time.Second, "failover client writing to "+want.String(), func() error {
		if err := fc.Set(ctx, "fc", want.Addr(), 0).Err(); err != nil {
			return fmt.Errorf("SET: %w", err)
		}
		info, err := fc.Info(ctx, "server").Result()
		if err != nil {
			return fmt.Errorf("INFO: %w", err)
		}
		if port := "tcp_port:" + strconv.Itoa(want.Port()); !strings.Contains(info, port) {
			return fmt.Errorf("client is not on %s (no %q in INFO server)", want, port)
		}
		return nil
	})
}

func mustSetGet(t *testing.T, c *redis.Client, key, val string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Set(ctx, key, val, 0).Err(); err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
	if got, err := c.Get(ctx, key).Result(); err != nil || got != val {
		t.Fatalf("GET %s = %q, %v; want %q, nil", key, got, err, val)
	}
}

func roleOf(t *testing.T, c *redis.Client) []any {
	t.Helper()
	got, err := c.Do(context.Background(), "ROLE").Slice()
	if err != nil || len(got) == 0 {
		t.Fatalf("ROLE = %v, %v; want a non-empty reply", got, err)
	}
	return got
}

func masterAddr(t *testing.T, s *redistest.Node, name string) string {
	t.Helper()
	r, err := s.Client(t).Do(context.Background(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name).StringSlice()
	if err != nil || len(r) != 2 {
		t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s = %v, %v; want host and port", s, r, err)
	}
	return net.JoinHostPort(r[0], r[1])
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	testkit.Eventually(t, timeout, func() error {
		if err := cond(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}
