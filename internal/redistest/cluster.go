package redistest

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// clusterTimeout bounds WaitHealthy: cluster_state:ok comes 2s after a
// master starts at the earliest, and a failover after a kill takes about
// NodeTimeout plus 1-2s of election.
const clusterTimeout = 30 * time.Second

// ClusterOptions shapes a Cluster.
type ClusterOptions struct {
	// Primaries is the number of masters; the 16384 slots are split into
	// that many contiguous ranges. Default 3.
	Primaries int
	// ReplicasPerPrimary is the number of replicas of each master. Default
	// 1; a negative value means none.
	ReplicasPerPrimary int
	// NodeTimeout is the cluster-node-timeout: how long a node must be
	// unreachable before it is flagged failing and its replica takes over.
	// Default 1s.
	NodeTimeout time.Duration
	// PartialCoverage sets cluster-require-full-coverage no: the other
	// shards keep serving while one has no primary. Redis' default (yes)
	// answers CLUSTERDOWN on every slot meanwhile.
	PartialCoverage bool
}

// withDefaults fills the zero fields of o.
func (o ClusterOptions) withDefaults() ClusterOptions {
	if o.Primaries == 0 {
		o.Primaries = 3
	}
	switch {
	case o.ReplicasPerPrimary == 0:
		o.ReplicasPerPrimary = 1
	case o.ReplicasPerPrimary < 0:
		o.ReplicasPerPrimary = 0
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = time.Second
	}
	return o
}

// ClusterTopo is a Redis Cluster of real redis-server processes on
// loopback. Which nodes are masters changes with failovers; Primaries,
// Replicas and PrimaryFor always ask the cluster.
type ClusterTopo struct {
	owner TB
	opts  ClusterOptions
	nodes []*Node          // nodes[:Primaries] were the first masters
	ids   map[*Node]string // cluster node IDs; nodes.conf keeps them
}

// Cluster starts opts.Primaries masters with opts.ReplicasPerPrimary
// replicas each, assigns the slots, joins the nodes (CLUSTER ADDSLOTSRANGE,
// MEET and REPLICATE) and returns once the cluster is healthy (see
// WaitHealthy): about 2s, as a new master waits 2s before it reports
// cluster_state:ok.
func Cluster(t TB, opts ClusterOptions) *ClusterTopo {
	t.Helper()
	serverBinary(t)
	opts = opts.withDefaults()
	if opts.Primaries < 0 || opts.NodeTimeout < time.Millisecond {
		t.Fatalf("redistest: cluster with %d primaries and node timeout %v; want >= 1 and >= 1ms",
			opts.Primaries, opts.NodeTimeout)
	}
	base := t.TempDir()
	ct := &ClusterTopo{owner: t, opts: opts, ids: make(map[*Node]string)}
	for i := range opts.Primaries * (1 + opts.ReplicasPerPrimary) {
		name := fmt.Sprintf("cluster-%d", i)
		n := newNode(t, name, kindServer, filepath.Join(base, name))
		n.cluster = ct
		ct.nodes = append(ct.nodes, n)
	}
	for _, n := range ct.nodes {
		n.start(t, 0)
	}
	ct.assignSlots(t)
	ct.meet(t)
	ct.replicate(t)
	ct.WaitHealthy(t)
	return ct
}

// clusterArgs returns the cluster options of the node's command line.
func (n *Node) clusterArgs() []string {
	n.mu.Lock()
	bus := n.busPort
	n.mu.Unlock()
	args := []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(n.dir, "nodes.conf"),
		"--cluster-node-timeout", strconv.FormatInt(n.cluster.opts.NodeTimeout.Milliseconds(), 10),
		"--cluster-port", strconv.Itoa(bus),
	}
	if n.cluster.opts.PartialCoverage {
		args = append(args, "--cluster-require-full-coverage", "no")
	}
	return args
}

// pickBusPort sets a free cluster bus port other than port.
func (n *Node) pickBusPort(t TB, port int) {
	t.Helper()
	bus := freePort(t)
	for bus == port {
		bus = freePort(t)
	}
	n.mu.Lock()
	n.busPort = bus
	n.mu.Unlock()
}

// do runs one command on n with a probe client, failing the test on error.
func do(t TB, n *Node, args ...any) any {
	t.Helper()
	var reply any
	err := probe(n.Addr(), func(ctx context.Context, c *redis.Client) error {
		var err error
		reply, err = c.Do(ctx, args...).Result()
		return err
	})
	if err != nil {
		t.Fatalf("redistest: %v on %s: %v", args, n, err)
	}
	return reply
}

// assignSlots records every node's ID, gives each a distinct config epoch
// (as redis-cli does, so no epoch collision has to be resolved) and splits
// the slots among the first Primaries nodes.
func (ct *ClusterTopo) assignSlots(t TB) {
	t.Helper()
	p := ct.opts.Primaries
	for i, n := range ct.nodes {
		id, ok := do(t, n, "CLUSTER", "MYID").(string)
		if !ok || id == "" {
			t.Fatalf("redistest: CLUSTER MYID on %s: got %q; want a node ID", n, id)
		}
		ct.ids[n] = id
		do(t, n, "CLUSTER", "SET-CONFIG-EPOCH", i+1)
		if i < p {
			do(t, n, "CLUSTER", "ADDSLOTSRANGE", i*clusterSlots/p, (i+1)*clusterSlots/p-1)
		}
	}
}

// meet introduces every node to the first and waits until every node's
// CLUSTER NODES lists all of them with the handshake done.
func (ct *ClusterTopo) meet(t TB) {
	t.Helper()
	first := ct.nodes[0]
	for _, n := range ct.nodes[1:] {
		n.mu.Lock()
		bus := n.busPort
		n.mu.Unlock()
		do(t, first, "CLUSTER", "MEET", loopback, n.Port(), bus)
	}
	for _, n := range ct.nodes {
		err := poll(clusterTimeout, func() error {
			_, err := ct.knownEntries(n)
			return err
		})
		if err != nil {
			t.Fatalf("redistest: %s waiting %v to know all %d cluster nodes: %v", n, clusterTimeout, len(ct.nodes), err)
		}
	}
}

// replicate makes node Primaries+j a replica of node j%Primaries.
func (ct *ClusterTopo) replicate(t TB) {
	t.Helper()
	p := ct.opts.Primaries
	for j, n := range ct.nodes[p:] {
		do(t, n, "CLUSTER", "REPLICATE", ct.ids[ct.nodes[j%p]])
	}
}

// Addrs returns every node's address, for redis.ClusterOptions.Addrs.
func (ct *ClusterTopo) Addrs() []string {
	addrs := make([]string, len(ct.nodes))
	for i, n := range ct.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes returns every node, running or not, in start order: the first
// Primaries nodes were the first masters.
func (ct *ClusterTopo) Nodes() []*Node { return append([]*Node(nil), ct.nodes...) }

// ID returns n's cluster node ID.
func (ct *ClusterTopo) ID(n *Node) string { return ct.ids[n] }

// byID returns the node with the cluster node ID id.
func (ct *ClusterTopo) byID(id string) (*Node, error) {
	for n, nid := range ct.ids {
		if nid == id {
			return n, nil
		}
	}
	return nil, fmt.Errorf("node ID %s is none of this cluster's nodes", id)
}

// reachable returns the nodes that are running and not stalled, and the
// others.
func (ct *ClusterTopo) reachable() (up, down []*Node) {
	for _, n := range ct.nodes {
		if n.Running() && !n.Stalled() {
			up = append(up, n)
		} else {
			down = append(down, n)
		}
	}
	return up, down
}
