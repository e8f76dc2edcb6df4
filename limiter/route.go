package limiter

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// router picks the pipe that carries a tenant's decisions: one node for
// standalone and Sentinel, the slot's node for Cluster.
type router interface {
	pipeFor(tenant string) (*pipe, error)
	// shard names the node that decides tenant ("" where one node decides
	// all), without I/O.
	shard(tenant string) string
	// pipeAt is the pipe of the node at addr, for a Cluster redirect; nil
	// where there are no redirects.
	pipeAt(addr string) *pipe
	// connect dials every pipe known now (see RedisStore.Connect).
	connect(ctx context.Context)
	// failed hears of an error reply or a broken connection, which in
	// Cluster can mean the slot moved.
	failed(err error)
	all() []*pipe
}

// fixedRoute is one node, found by addr at every dial.
type fixedRoute struct{ p *pipe }

func (r fixedRoute) pipeFor(string) (*pipe, error) { return r.p, nil }
func (r fixedRoute) failed(error)                  {}
func (r fixedRoute) shard(string) string           { return "" }
func (r fixedRoute) pipeAt(string) *pipe           { return nil }
func (r fixedRoute) connect(ctx context.Context)   { r.p.connect(ctx) }
func (r fixedRoute) all() []*pipe                  { return []*pipe{r.p} }

// newRoutes builds the routers of the primary and of the replica for c's
// topology. It does no I/O.
func newRoutes(c *Clients, cfg pipeConfig) (primary, replica router) {
	o := c.opts
	pcfg, rcfg := cfg, cfg
	rcfg.replica = true
	switch o.Mode {
	case ModeSentinel:
		pcfg.conn.primary = true // Sentinel can name a stale primary
		s := &sentinels{master: o.MasterName, timeout: o.DialTimeout}
		for _, a := range o.Addrs {
			s.clients = append(s.clients, redis.NewSentinelClient(&redis.Options{
				Addr: a, Username: o.SentinelUsername, Password: o.SentinelPassword, TLSConfig: c.tls,
				DialTimeout: o.DialTimeout, ReadTimeout: o.DialTimeout, WriteTimeout: o.DialTimeout,
				MaxRetries: -1, PoolSize: 2,
			}))
		}
		c.sentinels = s
		replicaAddr := s.replica
		if len(o.LocalReplicas) > 0 {
			replicaAddr = fixedAddr(o.LocalReplicas[0])
		}
		primary := newPipe(&pcfg, s.primary)
		primary.follow = s.follow
		return fixedRoute{primary}, fixedRoute{newPipe(&rcfg, replicaAddr)}
	case ModeCluster:
		rcfg.conn.readOnly = true
		return newClusterRoute(c.Primary.(*redis.ClusterClient), &pcfg, false),
			newClusterRoute(c.Replica.(*redis.ClusterClient), &rcfg, true)
	default:
		p := fixedRoute{newPipe(&pcfg, fixedAddr(o.Addrs[0]))}
		return p, p
	}
}

func fixedAddr(a string) func() (string, error) {
	return func() (string, error) { return a, nil }
}

// sentinels asks the sentinels where the primary and the replicas are.
type sentinels struct {
	clients []*redis.SentinelClient
	master  string
	timeout time.Duration
	last    atomic.Pointer[string] // the primary's address as last heard
}

// followEvery is how often the sentinels are asked where the primary is:
// a failover is followed within it.
const followEvery = 250 * time.Millisecond

// primary is the primary's address as last heard from the sentinels; the
// first time, they are asked.
func (s *sentinels) primary() (string, error) {
	if a := s.last.Load(); a != nil {
		return *a, nil
	}
	a, err := s.askPrimary()
	if err != nil {
		return "", err
	}
	s.last.CompareAndSwap(nil, &a)
	return *s.last.Load(), nil
}

// follow asks the sentinels where the primary is every followEvery, and
// calls moved when the answer changes, until quit closes. With no
// sentinel answering, the last address stays in use (every connection to
// it still checks ROLE).
func (s *sentinels) follow(quit <-chan struct{}, moved func()) {
	t := time.NewTicker(followEvery)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		a, err := s.askPrimary()
		if err != nil {
			continue
		}
		if old := s.last.Swap(&a); old == nil || *old != a {
			moved()
		}
	}
}

// askPrimary is the address the first sentinel to answer gives.
func (s *sentinels) askPrimary() (string, error) {
	var errs []error
	for _, sc := range s.clients {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		a, err := sc.GetMasterAddrByName(ctx, s.master).Result()
		cancel()
		if err == nil && len(a) == 2 {
			return a[0] + ":" + a[1], nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("no sentinel gives the primary of %s: %w", s.master, errors.Join(errs...))
}

// replica is a replica a sentinel reports as up and linked, at random.
func (s *sentinels) replica() (string, error) {
	for _, sc := range s.clients {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		rs, err := sc.Replicas(ctx, s.master).Result()
		cancel()
		if err != nil {
			continue
		}
		var up []string
		for _, r := range rs {
			if !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") &&
				r["master-link-status"] == "ok" {
				up = append(up, r["ip"]+":"+r["port"])
			}
		}
		if len(up) > 0 {
			return up[rand.IntN(len(up))], nil
		}
	}
	return "", fmt.Errorf("no sentinel reports a healthy replica of %s", s.master)
}

func (s *sentinels) close() {
	for _, sc := range s.clients {
		sc.Close()
	}
}

// clusterRoute follows go-redis' slot map: a pipe per node address.
type clusterRoute struct {
	cl       *redis.ClusterClient
	cfg      *pipeConfig
	readOnly bool
	ready    atomic.Bool // the slot map has been loaded once
	loadMu   sync.Mutex
	loaded   chan struct{} // closed when the load under way ends; nil when none is
	mu       sync.RWMutex
	pipes    map[string]*pipe
}

func newClusterRoute(cl *redis.ClusterClient, cfg *pipeConfig, readOnly bool) *clusterRoute {
	return &clusterRoute{cl: cl, cfg: cfg, readOnly: readOnly, pipes: map[string]*pipe{}}
}

// errNoSlotMap: the cluster's slot map is not loaded yet; it is being
// loaded in the background, never on the request path.
var errNoSlotMap = errors.New("limiter: the cluster's slot map is not loaded yet")

func (r *clusterRoute) pipeFor(tenant string) (*pipe, error) {
	if !r.ready.Load() && !r.waitLoad() {
		return nil, errNoSlotMap
	}
	// Tenant IDs have no braces, so the tenant's slot is that of its keys.
	var node *redis.Client
	var err error
	if r.readOnly {
		node, err = r.cl.SlaveForKey(context.Background(), tenant)
	} else {
		node, err = r.cl.MasterForKey(context.Background(), tenant)
	}
	if err != nil {
		return nil, err
	}
	return r.pipeAt(node.Options().Addr), nil
}

func (r *clusterRoute) shard(tenant string) string {
	if !r.ready.Load() {
		return ""
	}
	node, err := r.cl.MasterForKey(context.Background(), tenant)
	if err != nil {
		return ""
	}
	return node.Options().Addr
}

// connect loads the slot map and dials a pipe to every node it names
// (masters, or replicas for reads).
func (r *clusterRoute) connect(ctx context.Context) {
	dial := func(ctx context.Context, node *redis.Client) error {
		r.pipeAt(node.Options().Addr).connect(ctx)
		return nil
	}
	var err error
	if r.readOnly {
		err = r.cl.ForEachSlave(ctx, dial)
	} else {
		err = r.cl.ForEachMaster(ctx, dial)
	}
	if err == nil {
		r.ready.Store(true)
	}
}

// pipeAt is the pipe of the node at addr, made on first use.
func (r *clusterRoute) pipeAt(addr string) *pipe {
	r.mu.RLock()
	p := r.pipes[addr]
	r.mu.RUnlock()
	if p != nil {
		return p
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p = r.pipes[addr]; p == nil {
		p = newPipe(r.cfg, fixedAddr(addr))
		r.pipes[addr] = p
	}
	return p
}

// waitLoad starts loading the slot map in the background, if no load is
// under way, and waits for it up to the budget. Only the first decisions
// (or those while the cluster is unreachable at start) get here.
func (r *clusterRoute) waitLoad() bool {
	r.loadMu.Lock()
	done := r.loaded
	if done == nil {
		done = make(chan struct{})
		r.loaded = done
		go r.load(done)
	}
	r.loadMu.Unlock()
	t := time.NewTimer(r.cfg.budget)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	return r.ready.Load()
}

func (r *clusterRoute) load(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.conn.dialTimeout+r.cfg.silence)
	defer cancel()
	if _, err := r.cl.MasterForKey(ctx, "l1gw"); err == nil {
		r.ready.Store(true)
	}
	r.loadMu.Lock()
	r.loaded = nil
	r.loadMu.Unlock()
	close(done)
}

func (r *clusterRoute) failed(err error) {
	var re replyError
	if errors.As(err, &re) && !strings.HasPrefix(string(re), "MOVED") && !strings.HasPrefix(string(re), "ASK") &&
		!strings.HasPrefix(string(re), "CLUSTERDOWN") {
		return // a script's own error: the map is fine
	}
	r.cl.ReloadState(context.Background())
}

func (r *clusterRoute) all() []*pipe {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*pipe, 0, len(r.pipes))
	for _, p := range r.pipes {
		out = append(out, p)
	}
	return out
}
