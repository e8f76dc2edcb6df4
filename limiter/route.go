package limiter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
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
	// close closes every pipe and stops what runs beside them.
	close()
}

// fixedRoute is one node, found by addr at every dial.
type fixedRoute struct{ p *pipe }

func (r fixedRoute) pipeFor(string) (*pipe, error) { return r.p, nil }
func (r fixedRoute) failed(error)                  {}
func (r fixedRoute) shard(string) string           { return "" }
func (r fixedRoute) pipeAt(string) *pipe           { return nil }
func (r fixedRoute) connect(ctx context.Context)   { r.p.connect(ctx) }
func (r fixedRoute) all() []*pipe                  { return []*pipe{r.p} }
func (r fixedRoute) close()                        { r.p.close() }

// newRoutes builds the routers of the primary and of the replica for c's
// topology. It does no I/O.
func newRoutes(c *Clients, cfg pipeConfig) (primary, replica router) {
	o := c.opts
	pcfg, rcfg := cfg, cfg
	pcfg.conn.identify = true // a restart of a primary loses records
	rcfg.replica = true
	// A replica silent for its share of the budget fails what waits for
	// it at once (see replicaShare): the primary decides meanwhile.
	rcfg.budget = max(cfg.budget/replicaShare, time.Millisecond)
	switch o.Mode {
	case ModeSentinel:
		pcfg.conn.primary = true // Sentinel can name a stale primary
		s := c.sentinels
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
	// following: a follow loop keeps last fresh; until one runs, primary
	// asks the sentinels itself.
	following atomic.Bool
	answered  atomic.Int64 // how many sentinels answered the last round; -1 before any
	// replicas are the local replicas, whose ROLE names their primary when
	// no sentinel answers and no address was ever heard.
	replicas []string
	conn     *connOptions
	// dialed are the go-redis connections dialPrimary made, by address:
	// closed when the primary moves, so no pooled connection goes on
	// writing to a former primary that still says master.
	mu     sync.Mutex
	dialed map[*trackedConn]string
}

// trackedConn is a connection dialPrimary made; it forgets itself when
// closed.
type trackedConn struct {
	net.Conn
	s    *sentinels
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.dialed, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// moved closes the connections dialPrimary made to any address but addr.
func (s *sentinels) moved(addr string) {
	s.mu.Lock()
	var stale []*trackedConn
	for c, a := range s.dialed {
		if a != addr {
			stale = append(stale, c)
		}
	}
	s.mu.Unlock()
	for _, c := range stale {
		c.Close()
	}
}

func newSentinels(o RedisOptions, tlsConf *tls.Config) *sentinels {
	s := &sentinels{master: o.MasterName, timeout: o.DialTimeout, replicas: o.LocalReplicas, dialed: map[*trackedConn]string{},
		conn: &connOptions{username: o.Username, password: o.Password, db: o.DB, tls: tlsConf, dialTimeout: o.DialTimeout}}
	for _, a := range o.Addrs {
		s.clients = append(s.clients, redis.NewSentinelClient(&redis.Options{
			Addr: a, Username: o.SentinelUsername, Password: o.SentinelPassword, TLSConfig: tlsConf,
			DialTimeout: o.DialTimeout, ReadTimeout: o.DialTimeout, WriteTimeout: o.DialTimeout,
			MaxRetries: -1, PoolSize: 2, DialerRetries: 1,
		}))
	}
	s.answered.Store(-1)
	return s
}

// dialPrimary is a go-redis Dialer that dials the primary the sentinels
// name (or, with none answering, the last one they named): the admin
// API's and the recorder's clients follow the decision path's view.
func (s *sentinels) dialPrimary(ctx context.Context, network, _ string) (net.Conn, error) {
	addr, err := s.primary()
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: s.conn.dialTimeout}
	var nc net.Conn
	if s.conn.tls == nil {
		nc, err = d.DialContext(ctx, network, addr)
	} else {
		nc, err = (&tls.Dialer{NetDialer: d, Config: s.conn.tls}).DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	c := &trackedConn{Conn: nc, s: s}
	s.mu.Lock()
	s.dialed[c] = addr
	s.mu.Unlock()
	return c, nil
}

// followEvery is how often the sentinels are asked where the primary is:
// a failover is followed within it.
const followEvery = 250 * time.Millisecond

// primary is the primary's address as last heard from the sentinels; the
// first time, or while no follow loop keeps it fresh, they are asked. With
// no sentinel answering, the last address heard is used (every connection
// to it still checks ROLE), and before any was heard, the primary a local
// replica replicates from.
func (s *sentinels) primary() (string, error) {
	a := s.last.Load()
	if a != nil && s.following.Load() {
		return *a, nil
	}
	r := s.round()
	if r.addr != "" {
		s.last.Store(&r.addr)
		return r.addr, nil
	}
	if a != nil {
		return *a, nil
	}
	if addr, err := s.primaryOfReplicas(); err == nil {
		return addr, nil
	}
	return "", fmt.Errorf("no sentinel gives the primary of %s: %w", s.master, r.err)
}

// follow asks every sentinel about the primary every followEvery until
// quit closes. It makes p's lanes dial again when the address changes, and
// keeps p's Sentinel doubt (see roundResult). With no sentinel answering,
// the last address stays in use, checked by ROLE, and the doubt stays as
// it was last known.
func (s *sentinels) follow(quit <-chan struct{}, p *pipe) {
	s.following.Store(true)
	defer s.following.Store(false)
	t := time.NewTicker(followEvery)
	defer t.Stop()
	for {
		r := s.round()
		if r.addr != "" {
			if old := s.last.Swap(&r.addr); old == nil || *old != r.addr {
				p.gen.Add(1)
				s.moved(r.addr)
			}
			p.health.doubt.Store(r.doubt)
		}
		select {
		case <-quit:
			return
		case <-t.C:
		}
	}
}

// roundResult is what one round of asking every sentinel found.
type roundResult struct {
	answered int
	// addr is the primary as the answering sentinel with the newest
	// configuration epoch names it; "" if none answered.
	addr string
	// doubt: a sentinel reports the primary o_down or failing over, or a
	// majority of all the sentinels report it s_down (one sentinel's own
	// s_down is its view alone).
	doubt bool
	err   error
}

// round asks every sentinel at once for the primary (SENTINEL MASTER).
func (s *sentinels) round() roundResult {
	type answer struct {
		m   map[string]string
		err error
	}
	answers := make([]answer, len(s.clients))
	var wg sync.WaitGroup
	for i, sc := range s.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			defer cancel()
			answers[i].m, answers[i].err = sc.Master(ctx, s.master).Result()
		}()
	}
	wg.Wait()
	var r roundResult
	var errs []error
	var got []map[string]string
	for _, a := range answers {
		if a.err != nil || a.m["ip"] == "" {
			errs = append(errs, a.err)
			continue
		}
		got = append(got, a.m)
	}
	r.answered = len(got)
	r.addr, r.doubt = tally(got, len(s.clients))
	r.err = errors.Join(errs...)
	s.answered.Store(int64(r.answered))
	sentinelsReachable.Set(float64(r.answered))
	return r
}

// tally reads the answers of the sentinels that answered (SENTINEL
// MASTER), of all configured: the primary is the one the answer with the
// newest config-epoch names; doubt is an o_down or failover in progress
// anywhere, or s_down from a majority of all the sentinels.
func tally(answers []map[string]string, configured int) (addr string, doubt bool) {
	epoch, sdown := int64(-1), 0
	for _, m := range answers {
		e, err := strconv.ParseInt(m["config-epoch"], 10, 64)
		if err != nil {
			e = 0
		}
		if addr == "" || e > epoch {
			epoch, addr = e, net.JoinHostPort(m["ip"], m["port"])
		}
		for _, f := range strings.Split(m["flags"], ",") {
			switch f {
			case "o_down", "failover_in_progress":
				doubt = true
			case "s_down":
				sdown++
			}
		}
	}
	return addr, doubt || sdown > configured/2
}

// primaryOfReplicas asks the local replicas' ROLE for their primary.
func (s *sentinels) primaryOfReplicas() (string, error) {
	for _, a := range s.replicas {
		c := redis.NewClient(s.conn.goRedisOptions(a))
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		role, err := c.Do(ctx, "ROLE").Slice()
		cancel()
		c.Close()
		if err != nil || len(role) < 3 || role[0] != "slave" {
			continue
		}
		host, _ := role[1].(string)
		port, _ := role[2].(int64)
		if host != "" && port > 0 {
			return net.JoinHostPort(host, strconv.FormatInt(port, 10)), nil
		}
	}
	return "", errors.New("no local replica names its primary")
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
	gone     map[string]bool // pipes the last sweep did not find in the slot map
	sweeping sync.Once
	quit     chan struct{}
	swept    sync.WaitGroup
}

func newClusterRoute(cl *redis.ClusterClient, cfg *pipeConfig, readOnly bool) *clusterRoute {
	return &clusterRoute{cl: cl, cfg: cfg, readOnly: readOnly, pipes: map[string]*pipe{}, quit: make(chan struct{})}
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
	if err != nil || len(named) == 0 {
		return // no slot map to judge by
	}
	var stale []*pipe
	r.mu.Lock()
	gone := map[string]bool{}
	for addr, p := range r.pipes {
		switch {
		case named[addr]:
		case r.gone[addr]:
			stale = append(stale, p)
			delete(r.pipes, addr)
		default:
			gone[addr] = true
		}
	}
	r.gone = gone
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
	r.sweeping.Do(func() {
		r.swept.Add(1)
		go r.sweepLoop()
	})
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
