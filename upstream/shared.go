package upstream

import (
	"sync"
	"sync/atomic"

	"github.com/l1gw/l1gw/limiter"
)

// SharedScope is what an upstream's shared limits count under
// (limiter.Rule.Scope): "upstream:<name>". Tenant IDs have no colon, so
// it is never a tenant's.
func SharedScope(name string) string { return "upstream:" + name }

// sharedRules are spec's limits, scoped to the upstream name.
func sharedRules(name string, limits []limiter.Rule) []limiter.Rule {
	if len(limits) == 0 {
		return nil
	}
	out := make([]limiter.Rule, len(limits))
	for i, r := range limits {
		r.Scope = SharedScope(name)
		out[i] = r
	}
	return out
}

// sharedCache holds, for one epoch (a tenants snapshot), the rule slices
// WithShared built, by the identity of the tenant's slice.
type sharedCache struct {
	epoch any
	m     sync.Map // *limiter.Rule (the first of a tenant's rules) → []limiter.Rule
}

// withShared is the cache of a Pool.
type withShared struct {
	cur atomic.Pointer[sharedCache]
}

// WithShared is the rules a request to this upstream is decided against:
// rules (a tenant's, from the tenants snapshot epoch), then the
// upstream's shared limits. The same rules of the same epoch get the same
// slice, built once: the deny cache and fail mode local know a request's
// rules by that identity, and the request path does not allocate.
func (p *Pool) WithShared(rules []limiter.Rule, epoch any) []limiter.Rule {
	if len(p.shared) == 0 {
		return rules
	}
	if len(rules) == 0 {
		return p.shared
	}
	c := p.cache.cur.Load()
	if c == nil || c.epoch != epoch {
		c = &sharedCache{epoch: epoch}
		p.cache.cur.Store(c) // a new epoch: the old slices go with it
	}
	if v, ok := c.m.Load(&rules[0]); ok {
		return v.([]limiter.Rule)
	}
	v, _ := c.m.LoadOrStore(&rules[0], append(rules[:len(rules):len(rules)], p.shared...))
	return v.([]limiter.Rule)
}
