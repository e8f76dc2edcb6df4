package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// manualFailoverRetry is how long Failover waits before sending CLUSTER
// FAILOVER again: Redis abandons a manual failover after 5s.
const manualFailoverRetry = 6 * time.Second

// WaitHealthy waits up to 30s until the cluster has settled around the
// nodes that run: every running, unstalled node reports cluster_state:ok
// with all 16384 slots assigned and served, lists every node, sees the
// other running nodes connected and not failing and flags the killed or
// stalled ones as failed (fail, not just fail?); all of them agree on which
// node is master and which replicates which; and every replica's link to
// its master is up. Use it after Kill or Stall (it then waits for the
// failure detection and, for a master, its replica's takeover) and after
// Resume.
func (ct *ClusterTopo) WaitHealthy(t TB) {
	t.Helper()
	if err := poll(clusterTimeout, ct.checkHealthy); err != nil {
		t.Fatalf("redistest: waiting %v for a healthy cluster: %v", clusterTimeout, err)
	}
}

// checkHealthy reports the first reason the cluster is not healthy yet.
func (ct *ClusterTopo) checkHealthy() error {
	up, down := ct.reachable()
	if len(up) == 0 {
		return fmt.Errorf("no cluster node is running")
	}
	var first string
	for i, n := range up {
		view, err := ct.checkNode(n, up, down)
		if err != nil {
			return err
		}
		if i == 0 {
			first = view
		} else if view != first {
			return fmt.Errorf("views differ: %s sees [%s]; %s sees [%s]", up[0], first, n, view)
		}
	}
	return nil
}

// checkNode reports why node n does not see a healthy cluster, or returns
// its view of the roles of the running nodes, to compare with the others'.
func (ct *ClusterTopo) checkNode(n *Node, up, down []*Node) (string, error) {
	if err := ct.checkInfo(n); err != nil {
		return "", err
	}
	entries, err := ct.knownEntries(n)
	if err != nil {
		return "", err
	}
	var view []string
	for _, o := range up {
		e := entries[ct.ids[o]]
		if e.flags["fail"] || e.flags["fail?"] || (!e.flags["myself"] && e.link != "connected") {
			return "", fmt.Errorf("%s sees %s with flags %v and link %s; want it healthy", n, o, e.flags, e.link)
		}
		view = append(view, o.name+":"+ct.roleName(e))
	}
	for _, o := range down {
		if e := entries[ct.ids[o]]; !e.flags["fail"] {
			return "", fmt.Errorf("%s does not flag the stopped %s as fail yet (flags %v)", n, o, e.flags)
		}
	}
	if me := entries[ct.ids[n]]; me.flags["slave"] {
		m, err := ct.byID(me.master)
		if err != nil {
			return "", fmt.Errorf("master of %s: %w", n, err)
		}
		if err := checkReplicaOf(n.Addr(), m.Port()); err != nil {
			return "", err
		}
	}
	return strings.Join(view, " "), nil
}

// roleName returns "master", or "replica-of-" and the master's name.
func (ct *ClusterTopo) roleName(e clusterEntry) string {
	if e.flags["master"] {
		return "master"
	}
	if m, err := ct.byID(e.master); err == nil {
		return "replica-of-" + m.name
	}
	return "replica-of-" + e.master
}

// checkInfo reports nil when CLUSTER INFO on n shows a healthy cluster
// knowing all of this cluster's nodes.
func (ct *ClusterTopo) checkInfo(n *Node) error {
	var text string
	err := probe(n.Addr(), func(ctx context.Context, c *redis.Client) error {
		var err error
		text, err = c.ClusterInfo(ctx).Result()
		return err
	})
	if err != nil {
		return fmt.Errorf("CLUSTER INFO on %s: %w", n, err)
	}
	kv := parseInfo(text)
	want := [][2]string{
		{"cluster_state", "ok"},
		{"cluster_slots_assigned", strconv.Itoa(clusterSlots)},
		{"cluster_slots_ok", strconv.Itoa(clusterSlots)},
		{"cluster_known_nodes", strconv.Itoa(len(ct.nodes))},
	}
	for _, w := range want {
		if kv[w[0]] != w[1] {
			return fmt.Errorf("CLUSTER INFO on %s: %s:%s; want %s", n, w[0], kv[w[0]], w[1])
		}
	}
	return nil
}

// Failover sends CLUSTER FAILOVER to replica, which takes its master's
// slots over in agreement with it (no write is lost), and waits until
// replica's ROLE is master and the cluster is healthy again (see
// WaitHealthy), the old master now replicating it: well under a second
// on an idle machine. It resends
// the command when Redis abandons the manual failover (after 5s).
func (ct *ClusterTopo) Failover(t TB, replica *Node) {
	t.Helper()
	if _, ok := ct.ids[replica]; !ok {
		t.Fatalf("redistest: cluster failover to %s: not a node of this cluster", replica)
	}
	if r, err := role(replica.Addr()); err != nil || r != "slave" {
		t.Fatalf("redistest: cluster failover to %s: ROLE is %q, %v; want a running replica", replica, r, err)
	}
	var sent time.Time
	err := poll(failoverTimeout, func() error {
		r, err := role(replica.Addr())
		if err == nil && r == "master" {
			return nil
		}
		if time.Since(sent) > manualFailoverRetry {
			err := probe(replica.Addr(), func(ctx context.Context, c *redis.Client) error {
				return c.ClusterFailover(ctx).Err()
			})
			if err != nil {
				return fmt.Errorf("CLUSTER FAILOVER: %w", err)
			}
			sent = time.Now()
		}
		return fmt.Errorf("ROLE is %q, %v; want master", r, err)
	})
	if err != nil {
		t.Fatalf("redistest: cluster failover to %s: waited %v: %v", replica, failoverTimeout, err)
	}
	ct.WaitHealthy(t)
}
