package limiter

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterRoute follows go-redis' slot map: a pipe per node address.
type clusterRoute struct {
	cl       *redis.ClusterClient
	cfg      *pipeConfig
	readOnly bool
	ready    atomic.Bool // the slot map has been loaded once
	loading  flight      // the slot map's load under way
	mu       sync.RWMutex
	pipes    map[string]*pipe
	gone     map[string]bool // pipes the last sweep did not find in the slot map
	// met holds the nodes the slot map has named since it was first
	// loaded; nil until then. A master met later is taken for a promoted
	// replica (see meet).
	met map[string]bool
	// pins holds, on a read route, the replica read for each master's
	// slots, by the master's address: go-redis picks one at random per
	// call when a master has several (see replicaFor).
	pins     map[string]string
	sweeping sync.Once
	quit     chan struct{}
	swept    sync.WaitGroup
}

func newClusterRoute(cl *redis.ClusterClient, cfg *pipeConfig, readOnly bool) *clusterRoute {
	return &clusterRoute{cl: cl, cfg: cfg, readOnly: readOnly, pipes: map[string]*pipe{}, pins: map[string]string{},
		quit: make(chan struct{})}
}

// clusterSweepEvery is how often a Cluster route closes the pipes of nodes the
// slot map no longer names (two sweeps in a row): a departed node's pipe
// and its watcher stop trying to reach it.
const clusterSweepEvery = 5 * time.Second

func (r *clusterRoute) sweepLoop() {
	defer r.swept.Done()
	t := time.NewTicker(clusterSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			return
		case <-t.C:
			r.sweep()
		}
	}
}

// sweep closes the pipes of nodes absent from the slot map now and at the
// sweep before.
func (r *clusterRoute) sweep() {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.conn.dialTimeout+r.cfg.silence)
	defer cancel()
	named, err := r.named(ctx)
	if err != nil || len(named) == 0 {
		return // no slot map to judge by
	}
	r.meet(named)
	var stale []*pipe
	r.mu.Lock()
	gone := map[string]bool{}
	for addr, p := range r.pipes {
		switch {
		case named[addr]:
		case r.gone[addr]:
			stale = append(stale, p)
			delete(r.pipes, addr)
			delete(r.met, addr) // named again later, it is met again
		default:
			gone[addr] = true
		}
	}
	r.gone = gone
	for master, addr := range r.pins {
		if !named[addr] {
			delete(r.pins, master) // no longer a replica: another is picked
		}
	}
	r.mu.Unlock()
	for _, p := range stale {
		p.close()
	}
}

func (r *clusterRoute) close() {
	r.sweeping.Do(func() {}) // no sweep starts after this
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	r.swept.Wait()
	for _, p := range r.all() {
		p.close()
	}
}

// errNoSlotMap: the cluster's slot map is not loaded yet; it is being
// loaded in the background, never on the request path.
var errNoSlotMap = errors.New("limiter: the cluster's slot map is not loaded yet")

func (r *clusterRoute) pipeFor(tenant string) (*pipe, error) {
	if !r.ready.Load() && !r.waitLoad() {
		return nil, errNoSlotMap
	}
	// Tenant IDs have no braces, so the tenant's slot is that of its keys.
	node, err := r.cl.MasterForKey(context.Background(), tenant)
	if err != nil {
		return nil, err
	}
	if r.readOnly {
		return r.replicaFor(tenant, node.Options().Addr)
	}
	return r.pipeAt(node.Options().Addr), nil
}

// errNoClusterReplica: go-redis has no replica of the slot ready (none, or
// each failing or loading) and would read its master.
var errNoClusterReplica = errors.New("limiter: no replica of the slot is ready")

// replicaFor is the pipe of the replica that reads tenant's slot, whose
// master is at master: the one read before for that master (pins) until a
// read fails or a sweep no longer finds it among the replicas, else the
// one go-redis picks. Replica consistency forgets a pending admission once
// a read shows it, which another replica further behind would not show:
// so one replica a master. A slot whose master go-redis would read instead
// fails, for the decision to read the primary as such.
func (r *clusterRoute) replicaFor(tenant, master string) (*pipe, error) {
	r.mu.RLock()
	addr := r.pins[master]
	r.mu.RUnlock()
	if addr != "" {
		return r.pipeAt(addr), nil
	}
	node, err := r.cl.SlaveForKey(context.Background(), tenant)
	if err != nil {
		return nil, err
	}
	if addr = node.Options().Addr; addr == master {
		return nil, errNoClusterReplica
	}
	r.mu.Lock()
	if pinned := r.pins[master]; pinned != "" {
		addr = pinned // another decision pinned one meanwhile
	} else {
		r.pins[master] = addr
	}
	r.mu.Unlock()
	return r.pipeAt(addr), nil
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
	named, err := r.named(ctx)
	if err == nil {
		r.meet(named)
		var wg sync.WaitGroup
		for addr := range named {
			wg.Go(func() { r.pipeAt(addr).connect(ctx) })
		}
		wg.Wait()
		r.ready.Store(true)
	}
	r.sweeping.Do(func() {
		r.swept.Add(1)
		go r.sweepLoop()
	})
}

// named is the set of nodes the slot map names: masters, or replicas for
// reads.
func (r *clusterRoute) named(ctx context.Context) (map[string]bool, error) {
	var mu sync.Mutex
	named := map[string]bool{}
	note := func(_ context.Context, node *redis.Client) error {
		mu.Lock()
		named[node.Options().Addr] = true
		mu.Unlock()
		return nil
	}
	var err error
	if r.readOnly {
		err = r.cl.ForEachSlave(ctx, note)
	} else {
		err = r.cl.ForEachMaster(ctx, note)
	}
	return named, err
}

// meet makes the pipes of the nodes the slot map names now. The first
// map's nodes are the route's to begin with. A master named later, or
// named again after a sweep found it gone, is, as far as the route can
// tell, a replica that a failover promoted (see promoted).
func (r *clusterRoute) meet(named map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := r.met == nil
	if first {
		r.met = make(map[string]bool, len(named))
		for addr := range named {
			r.met[addr] = true
		}
	}
	for addr := range named {
		if p := r.pipeLocked(addr); !first && r.gone[addr] {
			r.promoted(p)
		}
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
	return r.pipeLocked(addr)
}

// pipeLocked is pipeAt with r.mu held. A node first met after the first
// slot map (a failover's new master, or a MOVED to it) is promoted.
func (r *clusterRoute) pipeLocked(addr string) *pipe {
	p := r.pipes[addr]
	if p == nil {
		p = newPipe(r.cfg, fixedAddr(addr))
		r.pipes[addr] = p
	}
	if r.met != nil && !r.met[addr] {
		r.met[addr] = true
		r.promoted(p)
	}
	return p
}

// promoted marks a master's pipe as a restart marks one
// (nodeHealth.lostAt): replication is asynchronous, so a replica a
// failover promoted may lack the old primary's last records. A master
// added to the cluster and given slots is marked too, as the route cannot
// tell the two apart; a read route's pipes decide nothing and are not.
func (r *clusterRoute) promoted(p *pipe) {
	if !r.readOnly {
		p.health.lost()
	}
}

// waitLoad starts loading the slot map in the background, if no load is
// under way, and waits for it up to the budget. Only the first decisions
// (or those while the cluster is unreachable at start) get here.
func (r *clusterRoute) waitLoad() bool {
	r.loading.wait(r.load, r.cfg.budget)
	return r.ready.Load()
}

func (r *clusterRoute) load() {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.conn.dialTimeout+r.cfg.silence)
	defer cancel()
	if _, err := r.cl.MasterForKey(ctx, "l1gw"); err == nil {
		r.ready.Store(true)
	}
}

func (r *clusterRoute) failed(p *pipe, err error) {
	if r.readOnly {
		r.unpin(p)
	}
	var re replyError
	if errors.As(err, &re) && !strings.HasPrefix(string(re), "MOVED") && !strings.HasPrefix(string(re), "ASK") &&
		!strings.HasPrefix(string(re), "CLUSTERDOWN") {
		return // a script's own error: the map is fine
	}
	r.cl.ReloadState(context.Background())
}

// unpin forgets the pins naming p's replica, which failed a read: its
// masters' replica is picked again, maybe another, once the decisions go
// back to the replicas (replicaSkip).
func (r *clusterRoute) unpin(p *pipe) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for master, addr := range r.pins {
		if r.pipes[addr] == p {
			delete(r.pins, master)
		}
	}
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
