package upstream

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// SharedScope is what an upstream's shared limits count under
// (limiter.Rule.Scope): "upstream:<name>". Tenant IDs have no colon, so
// it is never a tenant's.
func SharedScope(name string) string { return "upstream:" + name }

// RouteScope is what a route's shared limits count under: "route:<name>".
func RouteScope(name string) string { return "route:" + name }

// RouteConcurrencyRule names a route's concurrency limit among its
// shared limits.
const RouteConcurrencyRule = "route_concurrency"

// defaultLeaseTTL is a route lease's window where RouteSpec.LeaseTTL is
// unset.
const defaultLeaseTTL = time.Minute

// scoped is limits, each counted under scope, then (when concurrency > 0)
// a Lease rule of ttl named RouteConcurrencyRule; nil when there are none.
func scoped(scope string, limits []limiter.Rule, concurrency int64, ttl time.Duration) []limiter.Rule {
	if len(limits) == 0 && concurrency <= 0 {
		return nil
	}
	out := make([]limiter.Rule, 0, len(limits)+1)
	for _, r := range limits {
		r.Scope = scope
		out = append(out, r)
	}
	if concurrency > 0 {
		if ttl <= 0 {
			ttl = defaultLeaseTTL
		}
		out = append(out, limiter.Rule{Name: RouteConcurrencyRule, Limit: concurrency, Window: ttl, Lease: true, Scope: scope})
	}
	return out
}

// Route is one entry of the routing table: the pool its requests go to
// and the shared limits they count in.
type Route struct {
	// Name is the route's name in the config; "" for a route without
	// shared limits.
	Name string
	// Pool is the route's upstream.
	Pool *Pool

	host    []byte
	prefix  []byte
	anyCase bool // the prefix matches in any case
	// shared are the route's limits and concurrency limit, scoped;
	// cache is Rules'.
	shared []limiter.Rule
	cache  atomic.Pointer[sharedCache]
}

// sharedCache holds, for one epoch (a tenants snapshot), the rule slices
// Rules built.
type sharedCache struct {
	epoch any
	m     sync.Map // sharedKey → []limiter.Rule
}

// sharedKey is what Rules built a slice from: the identity of the
// tenant's slice (nil when empty) and the pool.
type sharedKey struct {
	first *limiter.Rule
	pool  *Pool
}

// Rules is what a request on this route to pool is decided against:
// rules (a tenant's, from the tenants snapshot epoch), then the route's
// shared limits, then pool's. The same rules of the same epoch to the same
// pool get the same slice, built once: the deny cache and fail mode local
// know a request's rules by that identity, and the request path does not
// allocate.
func (rt *Route) Rules(rules []limiter.Rule, pool *Pool, epoch any) []limiter.Rule {
	switch {
	case len(rt.shared) == 0 && len(pool.shared) == 0:
		return rules
	case len(rules) == 0 && len(pool.shared) == 0:
		return rt.shared
	case len(rules) == 0 && len(rt.shared) == 0:
		return pool.shared
	}
	c := rt.cache.Load()
	if c == nil || c.epoch != epoch {
		c = &sharedCache{epoch: epoch}
		rt.cache.Store(c) // a new epoch: the old slices go with it
	}
	k := sharedKey{pool: pool}
	if len(rules) > 0 {
		k.first = &rules[0]
	}
	if v, ok := c.m.Load(k); ok {
		return v.([]limiter.Rule)
	}
	all := make([]limiter.Rule, 0, len(rules)+len(rt.shared)+len(pool.shared))
	all = append(append(append(all, rules...), rt.shared...), pool.shared...)
	v, _ := c.m.LoadOrStore(k, all)
	return v.([]limiter.Rule)
}
