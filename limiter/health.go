package limiter

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
)

// nodeHealth is what background watchers know of a primary that its
// replies do not say: whether it may be evicting the limiter's keys, and
// whether Sentinel has confirmed it since its connection last broke. A
// decision it answered is marked degraded while either holds. The request
// path only loads atomics.
type nodeHealth struct {
	// evictTo (unix ns) is the end of the last period in which the node
	// may have evicted keys; MaxInt64 while it may still be, 0 if never. A
	// decision whose window reaches back into the period may count fewer
	// records than were admitted.
	evictTo atomic.Int64
	// unconfirmed: the node came back from a broken connection, or
	// Sentinel reports it down or failing over; its writes may be lost.
	unconfirmed atomic.Bool
	// brokeAt (unix ns): when a lane's connection to it last broke.
	brokeAt atomic.Int64
}

// why is the reason a decision of rules the node answered at now (unix
// ns) cannot be stood behind, or "".
func (h *nodeHealth) why(rules []Rule, now int64) string {
	if h.unconfirmed.Load() {
		return WhyUnconfirmed
	}
	to := h.evictTo.Load()
	if to == 0 {
		return ""
	}
	for _, r := range rules {
		if now-int64(r.Window) <= to {
			return WhyEvicting
		}
	}
	return ""
}

// memoryState is what INFO memory and stats say about eviction.
type memoryState struct {
	evicted    int64  // evicted_keys
	used       int64  // used_memory minus what eviction does not count
	maxmemory  int64  // 0: no limit
	policy     string // maxmemory_policy
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
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
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
		}
	}
	m.used -= notCounted
	return m
}

// evictionEvery is how often a primary's memory state is read: a node
// that starts evicting is noticed within it.
const evictionEvery = 100 * time.Millisecond

// evictionHold is how long a node stays "evicting" after the last read
// that showed it might: at the edge of maxmemory, evictions come and go
// between reads.
const evictionHold = 500 * time.Millisecond

var evictingGauge = metrics.NewGauge(`l1gw_redis_evicting`, nil)

// evicting counts the primaries that may be evicting the limiter's keys
// now (the l1gw_redis_evicting gauge).
var evicting atomic.Int64

func init() {
	evictingGauge.Set(0)
}

// watchMemory reads the memory state of the pipe's node every
// evictionEvery until quit closes, and keeps p.health's eviction period.
// A node starts "evicting" when its evicted_keys grows, or when it is at
// maxmemory under a policy that evicts; it stops evictionHold after the
// last read that showed either. The first read happens before Connect
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
	var lastRisk time.Time
	t := time.NewTicker(evictionEvery)
	defer t.Stop()
	for {
		if a, err := p.addr(); err == nil && a != addr {
			if client != nil {
				client.Close()
			}
			addr, last = a, -1
			client = redis.NewClient(p.cfg.conn.goRedisOptions(a))
		}
		if client != nil {
			m := readMemory(client, p.cfg.conn.dialTimeout)
			if !m.infoFailed {
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
		select {
		case <-quit:
			if was {
				evictingGauge.Set(float64(evicting.Add(-1)))
			}
			return
		case <-t.C:
		}
	}
}

func readMemory(c *redis.Client, timeout time.Duration) memoryState {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	info, err := c.Info(ctx, "memory", "stats").Result()
	if err != nil {
		return memoryState{infoFailed: true}
	}
	return parseMemoryState(info)
}

// goRedisOptions are a single-connection go-redis client's options for a
// background reader of the node at addr.
func (o *connOptions) goRedisOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr: addr, Username: o.username, Password: o.password, DB: o.db, TLSConfig: o.tls,
		DialTimeout: o.dialTimeout, ReadTimeout: o.dialTimeout, WriteTimeout: o.dialTimeout,
		PoolSize: 1, MaxRetries: -1, DialerRetries: 1,
	}
}
