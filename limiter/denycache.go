package limiter

import (
	"sync"
	"time"
)

// denyCacheSize bounds the entries of a deny cache; past it, denials are
// not cached (they are still answered by Redis).
const denyCacheSize = 1 << 16

const denyShards = 16

// maxDenyFor caps how long one denial is cached: an admin reset on
// another gateway, or a limit raised there, is seen within this, at the
// price of one Redis call per tenant and rule set per period.
const maxDenyFor = 10 * time.Second

// denyCache remembers "this tenant's request for these rules cannot fit
// until T", so a tenant over its limit costs no Redis round trip until
// capacity frees. Sliding-log capacity frees only as entries age out, and
// other gateways only add entries, so until T Redis would deny too: the
// cache never denies a request Redis would admit (but for an admin reset
// on another gateway, seen within maxDenyFor). T is measured from when the
// request was sent, never later than Redis' own clock saw it.
//
// The key is the tenant and the identity of its rule slice (one per route
// of a tenant snapshot), so a hit returns the exact rule set it was made
// for. A nil *denyCache is a cache that is off.
type denyCache struct {
	shards [denyShards]denyShard
	max    int // per shard
}

type denyShard struct {
	mu sync.Mutex
	m  map[denyKey]*denyEntry
}

type denyKey struct {
	tenant string
	rules  *Rule
}

// denyEntry is never changed once in a map, so lookup copies it unlocked;
// it is held by pointer so that a miss copies nothing (a Decision is
// about 1.2 KB).
type denyEntry struct {
	at    time.Time // when the denied request was sent
	until time.Time // when it could fit
	d     Decision
}

func newDenyCache(size int) *denyCache {
	c := &denyCache{max: max(size/denyShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[denyKey]*denyEntry)
	}
	return c
}

func (c *denyCache) shard(tenant string) *denyShard {
	return &c.shards[tenantHash(tenant)%denyShards]
}

// lookup puts in d the cached denial for req, its times moved to now,
// and reports whether there was one; d is untouched when there was not.
func (c *denyCache) lookup(req Request, now time.Time, d *Decision) bool {
	if c == nil {
		return false
	}
	sh := c.shard(req.Tenant)
	k := denyKey{req.Tenant, &req.Rules[0]}
	sh.mu.Lock()
	e, ok := sh.m[k]
	if ok && !now.Before(e.until) {
		delete(sh.m, k)
		ok = false
	}
	sh.mu.Unlock()
	if !ok {
		return false
	}
	*d = e.d
	d.Cached = true
	elapsed := now.Sub(e.at)
	for i := range d.States() {
		st := &d.Rules[i]
		st.Reset = max(st.Reset-elapsed, 0)
		switch {
		case st.RetryAfter <= 0:
		case st.Shadow && st.RetryAfter <= elapsed:
			st.RetryAfter = 0 // the shadow rule would have room by now
		default:
			st.RetryAfter = max(st.RetryAfter-elapsed, time.Nanosecond)
		}
	}
	return true
}

// remember caches a denial decided for a request sent at sent. Only an
// enforced rule denies, and only its retry-after (Decision.RetryAfter)
// bounds the entry: a shadow rule's would-be denial is never cached.
func (c *denyCache) remember(req Request, d *Decision, sent time.Time) {
	if c == nil || d.Allowed {
		return
	}
	sh := c.shard(req.Tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.m) >= c.max {
		for k, e := range sh.m {
			if !sent.Before(e.until) {
				delete(sh.m, k)
			}
		}
		if len(sh.m) >= c.max {
			return
		}
	}
	sh.m[denyKey{req.Tenant, &req.Rules[0]}] = &denyEntry{at: sent, until: sent.Add(min(d.RetryAfter(), maxDenyFor)), d: *d}
}

// forget drops every entry of tenant.
func (c *denyCache) forget(tenant string) {
	if c == nil {
		return
	}
	sh := c.shard(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for k := range sh.m {
		if k.tenant == tenant {
			delete(sh.m, k)
		}
	}
}
