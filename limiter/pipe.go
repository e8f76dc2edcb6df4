package limiter

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// A pipe carries decision scripts to one Redis node. Callers queue ops;
// a few lanes, each owning one connection, take everything queued (up to
// maxBatch), write it in one write and read the replies in order. Under
// load many decisions share a syscall on both sides, and no decision
// costs a goroutine, a timer or an allocation.
//
// The budget is judged by a watchdog on evidence from the kernel, not by
// a clock started when the request arrived: a call is given up only when,
// for longer than its budget since its batch was seen sent (TCP_INFO's
// bytes sent), nothing was received on its connection (bytes received,
// read by the gateway or not); or, once part of the reply came, when the
// lane waits in Read with every received byte taken and nothing more
// came for longer than the budget. A gateway too busy to read a reply
// that has arrived makes its requests slower, never degraded. Time spent
// waiting in the queue is the gateway's, not Redis': it is bounded by the
// queue timeout, past which an op is shed with ErrOverload.
type pipe struct {
	cfg  *pipeConfig
	addr func() (string, error) // the node to dial, asked at every dial
	// follow, if not nil, runs beside the lanes: it bumps gen when the
	// node's address changes (a Sentinel failover) and keeps health's
	// confirmation.
	follow func(quit <-chan struct{}, p *pipe)
	gen    atomic.Uint64 // bumped by moved: lanes dial again before their next batch
	clock  atomic.Int64  // unix ns, set by the watchdog every tick: health's coarse clock (see now)
	// asleep: the watchdog rests, the pipe having carried nothing for
	// restAfter, until a lane leaves phaseIdle and sends on wake (a
	// queued decision needs no wake-up: an idle lane takes it). An idle
	// gateway so costs no tick every fifth of a budget. rousedAt (unix
	// ns) is when a call last woke it.
	asleep   atomic.Bool
	wake     chan struct{}
	rousedAt atomic.Int64
	// memWake asks the memory watcher for a read at once: the pipe is in
	// use again after a rest, on a memory state up to idleMemoryEvery old.
	memWake chan struct{}
	// silentAt (unix ns) is when the watchdog last found a lane that can
	// carry nothing soon (see lane.check): Redis silent past the budget on
	// a call, or a dial that long. 0 if never. repliedAt is when a lane
	// last read the replies of a batch; asking is set while a caller asks
	// the node whether it answers (RedisStore.answers).
	silentAt, repliedAt atomic.Int64
	asking              atomic.Bool
	queue               chan *op
	lanes               []*lane
	dialed              sync.WaitGroup // every lane's first dial, done or failed
	quit                chan struct{}
	// dialedAddr is the address a lane last dialed: on a replica pipe,
	// a lane that dials another bumps gen (lane.dial).
	dialedAddr atomic.Pointer[string]
	// health is what the watchers know of a primary's node; memRead is
	// closed after the first read of its memory state.
	health  nodeHealth
	node    atomic.Pointer[nodeID] // the node last dialed or read, for restarts
	memRead chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	shut    atomic.Bool
}

// pipeConfig is what every pipe of a store shares.
type pipeConfig struct {
	conn  connOptions
	lanes int
	// budget is how long Redis may stay silent on a decision.
	budget time.Duration
	// silence closes a connection that has been silent this long on a
	// call (redis.read_timeout): the lane then dials again.
	silence time.Duration
	// queueTimeout sheds an op that waited this long to be sent.
	queueTimeout time.Duration
	// replica: the pipes read from replicas (metrics label).
	replica bool
	// mixed: a call may decide for several tenants (encodeMixed), their
	// keys in any slot: not Cluster.
	mixed bool
	// late, if not nil, gets each decision admitted by a reply that came
	// after the decision was given up (past its budget): its caller went
	// on without it, so what it recorded is the hook's to undo.
	late func(*op)
	// reloadHook, if not nil, runs in reload before the SCRIPT LOAD is
	// written: a test's stand-in for a gateway slow to go on.
	reloadHook func(*lane)
	// unlinked, if not nil, hears of a dial that the node at addr refused
	// as no replica linked to its primary (ErrReplicaUnlinked).
	unlinked func(addr string)
}

const (
	// pipeQueue bounds the ops waiting for a lane, per node.
	pipeQueue = 4096
	// maxBatch bounds the ops one write carries. Redis runs every command
	// that has arrived on any connection before it writes the first reply
	// of that event-loop turn, so what is in flight on a node (lanes ×
	// maxBatch, from every gateway) must cost it well under a budget even
	// when Redis is slowed, say by sharing a core. At 64 (2 × 64 in flight)
	// a saturated bench-compare had 18–171 decisions of a 5 s run degraded
	// at 256 connections with Redis healthy, in 5 runs of 5; at 16, one
	// batch in 1 run of 5, at the same throughput.
	maxBatch = 16
)

var errClosed = errors.New("limiter: the store is closed")

// batchStats are the decision batches' metrics of one node, labelled by
// its role and address: a shard's latency is its own.
type batchStats struct {
	size      *metrics.Histogram
	roundTrip *metrics.Histogram
}

// nodeStats holds the batchStats of every node dialed, by role and
// address; a node keeps its series for the life of the process (their
// number is the topology's, not the traffic's).
var nodeStats sync.Map

// statsFor returns the batch metrics of the node at addr; a lane asks it
// once per dial.
func statsFor(replica bool, addr string) *batchStats {
	role := "primary"
	if replica {
		role = "replica"
	}
	key := role + "|" + addr
	if v, ok := nodeStats.Load(key); ok {
		return v.(*batchStats)
	}
	labels := `{role="` + role + `",node="` + addr + `"}`
	v, _ := nodeStats.LoadOrStore(key, &batchStats{
		size:      metrics.GetOrCreateHistogram(`l1gw_decision_batch_size` + labels),
		roundTrip: metrics.GetOrCreateHistogram(`l1gw_redis_call_duration_seconds` + labels),
	})
	return v.(*batchStats)
}

// batch records one batch, which is one call to Redis: its decisions, and
// the time from its write until its last reply was read
// (l1gw_redis_call_duration_seconds).
func (s *batchStats) batch(n int, took time.Duration) {
	s.size.Update(float64(n))
	s.roundTrip.Update(took.Seconds())
}

func newPipe(cfg *pipeConfig, addr func() (string, error)) *pipe {
	p := &pipe{cfg: cfg, addr: addr, queue: make(chan *op, pipeQueue), quit: make(chan struct{}),
		memRead: make(chan struct{}), wake: make(chan struct{}, 1), memWake: make(chan struct{}, 1)}
	for range max(cfg.lanes, 1) {
		p.lanes = append(p.lanes, &lane{p: p})
	}
	return p
}

// do carries o to Redis and waits until it is settled: by its reply, by
// the watchdog, or at once when the queue is full.
func (p *pipe) do(o *op) {
	p.once.Do(p.start)
	o.queued = monoNow() // not the coarse clock: a late watchdog would age it
	if p.shut.Load() {
		o.settle(nil, errClosed)
		o.release()
	} else {
		select {
		case p.queue <- o:
			if p.shut.Load() {
				p.failQueued(errClosed) // close may have drained the queue before o was in it
			}
		default:
			o.settle(nil, errQueueFull)
			o.release()
		}
	}
	<-o.done
}

func (p *pipe) start() {
	if p.shut.Load() {
		return // closed before it was ever used
	}
	p.clock.Store(time.Now().UnixNano())
	p.dialed.Add(len(p.lanes))
	p.wg.Add(len(p.lanes) + 1)
	for _, l := range p.lanes {
		go l.run()
	}
	go p.watch()
	if !p.cfg.replica {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.watchMemory(p.quit, p.memRead)
		}()
	} else {
		close(p.memRead)
	}
	if p.follow != nil {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.follow(p.quit, p)
		}()
	}
}

// connect starts the lanes, if they are not running yet, and waits until
// each has dialed once (or failed to), up to ctx: a gateway that connects
// before it serves never dials under its first load.
func (p *pipe) connect(ctx context.Context) {
	p.once.Do(p.start)
	done := make(chan struct{})
	go func() {
		p.dialed.Wait()
		<-p.memRead
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// close stops the lanes, closing their connections, and fails what is
// queued.
func (p *pipe) close() {
	if !p.shut.CompareAndSwap(false, true) {
		return
	}
	close(p.quit)
	for _, l := range p.lanes {
		l.mu.Lock()
		if l.c != nil {
			l.c.close()
		}
		l.mu.Unlock()
	}
	p.wg.Wait()
	p.failQueued(errClosed)
}

// idle reports whether nothing is queued or being carried.
func (p *pipe) idle() bool {
	if len(p.queue) > 0 {
		return false
	}
	for _, l := range p.lanes {
		l.mu.Lock()
		busy := l.phase != phaseIdle
		l.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// nodeID is a node as last seen by a dial's handshake or the memory
// watcher (INFO server and replication): its address, its run_id and its
// place in replication.
type nodeID struct {
	addr, runID string
	replica     bool   // role:slave
	replID      string // master_replid
	// shifted: master_replid2 is set. A promotion takes a new replication
	// ID and keeps the old one there; a master that frees its backlog
	// (repl-backlog-ttl without replicas) takes a new one and clears it.
	shifted bool
}

// promotedSince reports whether the node, seen as n after old at the same
// address with the same run_id, was promoted in between: it was a replica
// then and is a master now, or it has taken a new replication ID at a
// promotion since (a replica phase no read saw).
func (n *nodeID) promotedSince(old *nodeID) bool {
	if n.replica {
		return false
	}
	return old.replica || n.shifted && n.replID != "" && old.replID != "" && n.replID != old.replID
}

// identified notes what a dial or the watcher saw of the node at
// seen.addr. At the same address, a new run_id is a restart, and a master
// that was a replica since it was last seen was promoted: a failback to a
// primary the pipe knew, after its replica took records that it never got.
// Either may lack records (see nodeHealth.lostAt).
//
// A replica keeps its clients' connections through its promotion, and a
// decision sent on one is not judged by a read made after it. So seeing
// the node a replica bumps gen: the lanes dial again before their next
// batch, and the dial sees any promotion before the batch is written; a
// connection that saw a replica carries one batch only (lane.serve).
func (p *pipe) identified(seen nodeID) {
	if seen.runID == "" {
		return
	}
	old := p.node.Load()
	if old != nil && *old == seen {
		return
	}
	if old != nil && old.addr == seen.addr && (old.runID != seen.runID || seen.promotedSince(old)) {
		p.health.lost()
	}
	if seen.replica && (old == nil || !old.replica) {
		p.gen.Add(1)
	}
	n := seen
	p.node.Store(&n)
}

func (p *pipe) failQueued(err error) {
	for {
		select {
		case o := <-p.queue:
			o.settle(nil, err)
			o.release()
		default:
			return
		}
	}
}
