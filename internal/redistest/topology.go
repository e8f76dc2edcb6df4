package redistest

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Options shapes a Topology.
type Options struct {
	// Replicas is the number of replicas started with --replicaof the
	// primary. Default 0.
	Replicas int
	// Sentinels is the number of sentinels monitoring the primary, with a
	// quorum of Sentinels/2+1. Default 0: no sentinels, and Primary asks
	// the nodes' ROLE instead.
	Sentinels int
	// MasterName is the name the sentinels monitor the primary under.
	// Default "mymaster".
	MasterName string
	// DownAfter is the sentinels' down-after-milliseconds: how long the
	// primary must be unreachable before it is considered down. Default 1s.
	DownAfter time.Duration
	// FailoverTimeout is the sentinels' failover-timeout. Default 5s.
	FailoverTimeout time.Duration
	// AOF turns appendonly on for the data nodes (fsync every second), so
	// a node restarted in place comes back with its data.
	AOF bool
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.MasterName == "" {
		o.MasterName = "mymaster"
	}
	if o.DownAfter == 0 {
		o.DownAfter = time.Second
	}
	if o.FailoverTimeout == 0 {
		o.FailoverTimeout = 5 * time.Second
	}
	return o
}

// Topo is a primary, its replicas and the sentinels monitoring them, all
// real processes on loopback. Which data node is the primary changes with
// failovers; Primary and Replicas always ask.
type Topo struct {
	owner     TB
	opts      Options
	nodes     []*Node // data nodes; nodes[0] was the first primary
	sentinels []*Node
}

// Topology starts a primary, opts.Replicas replicas and opts.Sentinels
// sentinels, and returns once every replica's link is up and every
// sentinel knows every replica and every other sentinel.
func Topology(t TB, opts Options) *Topo {
	t.Helper()
	serverBinary(t)
	opts = opts.withDefaults()
	if opts.Replicas < 0 || opts.Sentinels < 0 {
		t.Fatalf("redistest: topology with %d replicas and %d sentinels; want counts >= 0", opts.Replicas, opts.Sentinels)
	}
	base := t.TempDir()
	tp := &Topo{owner: t, opts: opts}
	for i := range opts.Replicas + 1 {
		name := fmt.Sprintf("redis-%d", i)
		n := newNode(t, name, kindServer, filepath.Join(base, name))
		n.topo = tp
		tp.nodes = append(tp.nodes, n)
	}
	primary := tp.nodes[0]
	primary.start(t, 0)
	for _, r := range tp.nodes[1:] {
		r.start(t, primary.Port())
	}
	for _, r := range tp.nodes[1:] {
		r.waitLink(t, primary.Port(), linkTimeout)
	}
	for i := range opts.Sentinels {
		name := fmt.Sprintf("sentinel-%d", i)
		s := newNode(t, name, kindSentinel, filepath.Join(base, name))
		s.conf = tp.sentinelConf(s.dir, primary.Port())
		tp.sentinels = append(tp.sentinels, s)
		s.start(t, 0)
	}
	tp.waitDiscovery(t, primary)
	return tp
}

// sentinelConf returns the config of a sentinel in dir watching the primary
// on primaryPort, for the sentinel's port.
func (tp *Topo) sentinelConf(dir string, primaryPort int) func(port int) string {
	name := tp.opts.MasterName
	quorum := tp.opts.Sentinels/2 + 1
	return func(port int) string {
		lines := []string{
			fmt.Sprintf("port %d", port),
			"bind " + loopback,
			"daemonize no",
			"protected-mode no",
			`logfile ""`,
			fmt.Sprintf("dir %q", dir),
			"sentinel resolve-hostnames no",
			fmt.Sprintf("sentinel monitor %s %s %d %d", name, loopback, primaryPort, quorum),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", name, tp.opts.DownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", name, tp.opts.FailoverTimeout.Milliseconds()),
		}
		return strings.Join(lines, "\n") + "\n"
	}
}

// MasterName returns the name the sentinels monitor the primary under.
func (tp *Topo) MasterName() string { return tp.opts.MasterName }

// Nodes returns every data node (primary and replicas), running or not, in
// start order.
func (tp *Topo) Nodes() []*Node { return append([]*Node(nil), tp.nodes...) }

// Sentinels returns every sentinel, running or not.
func (tp *Topo) Sentinels() []*Node { return append([]*Node(nil), tp.sentinels...) }

// SentinelAddrs returns the sentinels' addresses, for
// redis.FailoverOptions.SentinelAddrs.
func (tp *Topo) SentinelAddrs() []string {
	addrs := make([]string, len(tp.sentinels))
	for i, s := range tp.sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Primary returns the data node that is master now: the address most
// reachable sentinels give for the master name, or, when no sentinel can
// be asked, the one running node whose ROLE is master. It asks again
// for up to startTimeout, since on a loaded machine one probe can time
// out. If neither answers by then it reports an error on the test that
// built the topology and returns the first primary.
func (tp *Topo) Primary() *Node {
	var p *Node
	err := poll(startTimeout, func() error {
		var err error
		p, err = tp.currentPrimary(false)
		return err
	})
	if err != nil {
		tp.owner.Errorf("redistest: find the primary of %s: %v", tp.opts.MasterName, err)
		return tp.nodes[0]
	}
	return p
}

// PrimaryNow is Primary without reporting on the test: the error says
// why no node could be named master now.
func (tp *Topo) PrimaryNow() (*Node, error) { return tp.currentPrimary(false) }

// Replicas returns the data nodes other than Primary(), running or not.
func (tp *Topo) Replicas() []*Node {
	p := tp.Primary()
	var rs []*Node
	for _, n := range tp.nodes {
		if n != p {
			rs = append(rs, n)
		}
	}
	return rs
}

// byAddr returns the data node listening on addr.
func (tp *Topo) byAddr(addr string) (*Node, error) {
	for _, n := range tp.nodes {
		if n.Addr() == addr {
			return n, nil
		}
	}
	return nil, fmt.Errorf("%s is none of this topology's data nodes", addr)
}
