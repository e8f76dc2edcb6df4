package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// clusterEntry is one line of CLUSTER NODES.
type clusterEntry struct {
	id     string
	addr   string // ip:port@cport
	flags  map[string]bool
	master string // the master's ID, "-" for a master
	link   string // "connected" or "disconnected"
}

// clusterNodes returns n's CLUSTER NODES by node ID.
func clusterNodes(n *Node) (map[string]clusterEntry, error) {
	var text string
	err := probe(n.Addr(), func(ctx context.Context, c *redis.Client) error {
		var err error
		text, err = c.ClusterNodes(ctx).Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES on %s: %w", n, err)
	}
	entries := make(map[string]clusterEntry)
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES on %s: line %q has %d fields; want at least 8", n, line, len(f))
		}
		e := clusterEntry{id: f[0], addr: f[1], flags: make(map[string]bool), master: f[3], link: f[7]}
		for _, fl := range strings.Split(f[2], ",") {
			e.flags[fl] = true
		}
		entries[e.id] = e
	}
	return entries, nil
}

// knownEntries returns n's CLUSTER NODES once it lists every node of the
// cluster, none of them still in handshake or without an address.
func (ct *ClusterTopo) knownEntries(n *Node) (map[string]clusterEntry, error) {
	entries, err := clusterNodes(n)
	if err != nil {
		return nil, err
	}
	for _, o := range ct.nodes {
		e, ok := entries[ct.ids[o]]
		switch {
		case !ok:
			return nil, fmt.Errorf("CLUSTER NODES on %s does not list %s (%d entries)", n, o, len(entries))
		case e.flags["handshake"] || e.flags["noaddr"]:
			return nil, fmt.Errorf("CLUSTER NODES on %s lists %s with flags %v", n, o, e.flags)
		}
	}
	return entries, nil
}

// view returns the CLUSTER NODES of the first running, unstalled node,
// retrying for a few seconds.
func (ct *ClusterTopo) view() (map[string]clusterEntry, error) {
	var entries map[string]clusterEntry
	err := poll(startTimeout, func() error {
		up, _ := ct.reachable()
		if len(up) == 0 {
			return fmt.Errorf("no cluster node is running")
		}
		var err error
		entries, err = ct.knownEntries(up[0])
		return err
	})
	return entries, err
}

// Primaries returns the nodes that are masters now and not flagged as
// failing, in start order, per CLUSTER NODES on the first running,
// unstalled node. If no node answers it reports an error on the test that
// built the cluster and returns nil.
func (ct *ClusterTopo) Primaries() []*Node {
	entries, err := ct.view()
	if err != nil {
		ct.owner.Errorf("redistest: find the cluster's primaries: %v", err)
		return nil
	}
	var ps []*Node
	for _, n := range ct.nodes {
		if e := entries[ct.ids[n]]; e.flags["master"] && !e.flags["fail"] {
			ps = append(ps, n)
		}
	}
	return ps
}

// Replicas returns the nodes other than Primaries(), running or not, in
// start order.
func (ct *ClusterTopo) Replicas() []*Node {
	primary := make(map[*Node]bool)
	for _, p := range ct.Primaries() {
		primary[p] = true
	}
	var rs []*Node
	for _, n := range ct.nodes {
		if !primary[n] {
			rs = append(rs, n)
		}
	}
	return rs
}

// PrimaryFor returns the master serving key's slot (CLUSTER KEYSLOT, then
// CLUSTER SLOTS) per the first running, unstalled node.
func (ct *ClusterTopo) PrimaryFor(t TB, key string) *Node {
	t.Helper()
	var p *Node
	err := poll(startTimeout, func() error {
		up, _ := ct.reachable()
		if len(up) == 0 {
			return fmt.Errorf("no cluster node is running")
		}
		var err error
		p, err = ct.slotOwner(up[0], key)
		return err
	})
	if err != nil {
		t.Fatalf("redistest: find the primary for key %q: %v", key, err)
	}
	return p
}

// OwnerNow is PrimaryFor without polling and without reporting on the
// test: the first running, unstalled node's answer, or why there is none.
func (ct *ClusterTopo) OwnerNow(key string) (*Node, error) {
	up, _ := ct.reachable()
	if len(up) == 0 {
		return nil, fmt.Errorf("no cluster node is running")
	}
	return ct.slotOwner(up[0], key)
}

// slotOwner asks n which master serves key's slot.
func (ct *ClusterTopo) slotOwner(n *Node, key string) (*Node, error) {
	var slot int64
	var shards []redis.ClusterShard
	err := probe(n.Addr(), func(ctx context.Context, c *redis.Client) error {
		var err error
		if slot, err = c.ClusterKeySlot(ctx, key).Result(); err != nil {
			return fmt.Errorf("CLUSTER KEYSLOT: %w", err)
		}
		if shards, err = c.ClusterShards(ctx).Result(); err != nil {
			return fmt.Errorf("CLUSTER SHARDS: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("on %s: %w", n, err)
	}
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if r.Start > slot || slot > r.End {
				continue
			}
			for _, node := range sh.Nodes {
				if node.Role == "master" {
					return ct.byPort(net.JoinHostPort(node.IP, strconv.FormatInt(node.Port, 10)))
				}
			}
		}
	}
	return nil, fmt.Errorf("CLUSTER SHARDS on %s has no master for slot %d", n, slot)
}

// byPort returns the node listening on addr's port (the cluster may report
// another spelling of the loopback address).
func (ct *ClusterTopo) byPort(addr string) (*Node, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("parse node address %q: %w", addr, err)
	}
	for _, n := range ct.nodes {
		if strconv.Itoa(n.Port()) == port {
			return n, nil
		}
	}
	return nil, fmt.Errorf("%s is none of this cluster's nodes", addr)
}
