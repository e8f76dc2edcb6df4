package limiter

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// nodeHealth is what the dials and the background watchers know of a
// primary that its replies do not say: whether it may be evicting the
// limiter's keys, whether it restarted (losing records), and whether
// Sentinel doubts it. An admission it answered is marked degraded while
// any holds (a denial stands: missing records only ever undercount). The
// request path only loads atomics.
type nodeHealth struct {
	// evictTo (unix ns) is the end of the last period in which the node
	// may have evicted keys; MaxInt64 while it may still be, 0 if never. A
	// decision whose window reaches back into the period may count fewer
	// records than were admitted.
	evictTo atomic.Int64
	// lostAt (unix ns): when the node was seen to have restarted (a new
	// run_id at the same address, at a dial or a watcher's read), or to
	// have been promoted since it was last seen (it was a replica, or took
	// a new replication ID at a promotion: see pipe.identified), or when
	// Sentinel named another primary (a failover: replication is
	// asynchronous); a window reaching back before it may miss records
	// that were lost.
	// A restarted node drops every connection, so the first admission it
	// answers after a restart is on a connection whose dial saw it. A
	// promoted one keeps them: the pipe drops them itself once it has
	// seen the node a replica (pipe.identified, lane.serve), so that the
	// same holds; the admissions answered after a promotion no read saw
	// the replica phase of, before the next read, are not marked. 0 if
	// never.
	lostAt atomic.Int64
	// doubt: Sentinel reports it down or failing over: its writes may be
	// discarded by the failover.
	doubt atomic.Bool
}

// lost notes that the node may have lost records now: a restart, or a
// failover to a replica (replication is asynchronous). See lostAt.
func (h *nodeHealth) lost() { h.lostAt.Store(time.Now().UnixNano()) }

// why is the reason an admission for rules the node answered at now (unix
// ns) cannot be stood behind, or "".
func (h *nodeHealth) why(rules []Rule, now int64) string {
	if h.doubt.Load() {
		return WhyUnconfirmed
	}
	if lost := h.lostAt.Load(); lost != 0 && reachesBack(rules, now, lost) {
		return WhyRestarted
	}
	if to := h.evictTo.Load(); to != 0 && reachesBack(rules, now, to) {
		return WhyEvicting
	}
	return ""
}

// reachesBack reports whether an enforced rule's window at now reaches
// back to t (Rule.Lookback). A shadow rule's lost records change no admission.
func reachesBack(rules []Rule, now, t int64) bool {
	for _, r := range rules {
		if !r.Shadow() && now-int64(r.Lookback()) <= t {
			return true
		}
	}
	return false
}

// memoryState is what INFO server, replication, memory and stats say
// about eviction, restarts and promotions.
type memoryState struct {
	node       nodeID // run_id, role and replication IDs; its addr unset
	evicted    int64  // evicted_keys
	used       int64  // used_memory minus what eviction does not count
	maxmemory  int64  // 0: no limit
	policy     string // maxmemory_policy
	linked     bool   // master_link_status:up: a replica in step with its primary
	infoFailed bool
}

// evictsNow reports whether the node is at its maxmemory (within 3%)
// under a policy that evicts: the next writes may evict keys.
func (m memoryState) evictsNow() bool {
	return m.policy != "" && m.policy != "noeviction" && m.maxmemory > 0 && m.used >= m.maxmemory/100*97
}

func parseMemoryState(info string) memoryState {
	var m memoryState
	var notCounted int64
	// Read 40 times a second: no allocation per line (a ParseInt of a
	// value that is not a number would allocate its error).
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		var n int64
		switch k {
		case "evicted_keys", "used_memory", "mem_not_counted_for_evict", "maxmemory":
			n, _ = strconv.ParseInt(v, 10, 64)
		}
		switch k {
		case "run_id":
			m.node.runID = v
		case "role":
			m.node.replica = v == "slave"
		case "master_replid":
			m.node.replID = v
		case "master_replid2":
			m.node.shifted = strings.Trim(v, "0") != "" // all zeros: none
		case "evicted_keys":
			m.evicted = n
		case "used_memory":
			m.used = n
		case "mem_not_counted_for_evict":
			notCounted = n
		case "maxmemory":
			m.maxmemory = n
		case "maxmemory_policy":
			m.policy = v
		case "master_link_status":
			m.linked = v == "up"
		}
	}
	m.used -= notCounted
	return m
}

// evictionEvery is how often a primary's memory state is read: a node
// that starts evicting is noticed within it.
const evictionEvery = 25 * time.Millisecond

// idleMemoryEvery is how often the memory state is read while the pipe's
// watchdog rests (pipe.asleep: it has carried nothing for restAfter):
// INFO costs Redis 12 µs warm and 60-90 µs on an idle node, and every
// gateway reads every primary. A call, or an admission judged by the
// node's health (primaryWhy), wakes the watchdog and asks for a read at
// once (pipe.rouse): the decisions that go by on the older state are
// those within one INFO round trip of the wake-up.
const idleMemoryEvery = time.Second

// evictionHold is how long a node stays "evicting" after the last read
// that showed it might: at the edge of maxmemory, evictions come and go
// between reads.
const evictionHold = 500 * time.Millisecond

// evicting counts the primaries that may be evicting the limiter's keys
// now (the l1gw_redis_evicting gauge).
var evicting atomic.Int64

// watchMemory reads the state of the pipe's node every evictionEvery
// (idleMemoryEvery while the pipe rests) until quit closes, and keeps
// p.health. A node starts "evicting" when its evicted_keys grows, or
// when it is at maxmemory under a policy that evicts; it stops
// evictionHold after the last read that showed either. A new run_id at
// the same address is a restart, and a replica since promoted there a
// failback (see pipe.identified). The first read happens before Connect
// returns.
func (p *pipe) watchMemory(quit <-chan struct{}, first chan<- struct{}) {
	var client *redis.Client
	var addr string
	defer func() {
		if client != nil {
			client.Close()
		}
	}()
	last := int64(-1)
	was := false
	var lastRisk, lastRead time.Time
	t := time.NewTimer(evictionEvery)
	defer t.Stop()
	for {
		if a, err := p.addr(); err == nil && a != addr {
			if client != nil {
				client.Close()
			}
			addr, last = a, -1
			client = redis.NewClient(p.cfg.conn.goRedisOptions(a))
		}
		// Resting: the watchdog rests and no call roused the pipe within
		// restAfter. A rouse reaches here before the watchdog has cleared
		// asleep, so asleep alone would skip the read it asks for.
		resting := p.asleep.Load() && time.Now().UnixNano()-p.rousedAt.Load() >= int64(restAfter)
		if client != nil && (!resting || time.Since(lastRead) >= idleMemoryEvery) {
			lastRead = time.Now()
			m := readMemory(client, p.cfg.conn.dialTimeout)
			if !m.infoFailed {
				m.node.addr = addr
				p.identified(m.node)
				now := time.Now()
				risk := m.evictsNow() || (last >= 0 && m.evicted > last)
				last = m.evicted
				if risk {
					lastRisk = now
				} else if was && now.Sub(lastRisk) < evictionHold {
					risk = true
				}
				switch {
				case risk && !was:
					p.health.evictTo.Store(math.MaxInt64)
					evictingGauge.Set(float64(evicting.Add(1)))
				case !risk && was:
					p.health.evictTo.Store(lastRisk.UnixNano())
					evictingGauge.Set(float64(evicting.Add(-1)))
				}
				was = risk
			}
		}
		if first != nil {
			close(first)
			first = nil
		}
		// While the pipe rests, sleep until the next read is due (a rouse
		// ends the wait at once) rather than tick 40 times a second.
		wait := evictionEvery
		if resting {
			wait = max(wait, idleMemoryEvery-time.Since(lastRead))
		}
		t.Reset(wait)
		select {
		case <-quit:
			if was {
				evictingGauge.Set(float64(evicting.Add(-1)))
			}
			return
		case <-t.C:
		case <-p.memWake:
		}
	}
}

func readMemory(c *redis.Client, timeout time.Duration) memoryState {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	info, err := c.Info(ctx, "server", "replication", "memory", "stats").Result()
	if err != nil {
		return memoryState{infoFailed: true}
	}
	return parseMemoryState(info)
}

// goRedisOptions are a single-connection go-redis client's options for a
// background reader of the node at addr.
func (o *connOptions) goRedisOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr: addr, Username: o.username, CredentialsProvider: func() (string, string) { return o.username, o.pass() }, DB: o.db, TLSConfig: o.tls,
		DialTimeout: o.dialTimeout, ReadTimeout: o.dialTimeout, WriteTimeout: o.dialTimeout,
		PoolSize: 1, MaxRetries: -1, DialerRetries: 1,
	}
}
