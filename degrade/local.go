package degrade

import (
	"context"
	"runtime"
	"sync"
	"weak"

	"github.com/l1gw/l1gw/limiter"
)

// localLimits is fail mode local: each rule enforced in this gateway's
// memory at limit / expected_gateways (at least 1), so N gateways together
// admit about one limit while Redis is gone. In fail mode open it holds
// the concurrency limits alone (Lease rules), the same way.
type localLimits struct {
	store    *limiter.MemoryStore
	gateways int64
	// scaled and leases map a rule slice, by the identity of its first
	// rule, to its rules scaled down: all of them, or its Lease rules. The
	// key is weak, and an entry goes once its slice is collected: every
	// reload builds the rules anew, and an outage would otherwise keep an
	// entry, with the old slice, for each reload of each tenant in use.
	scaled, leases sync.Map // weak.Pointer[limiter.Rule] → []limiter.Rule
}

func newLocalLimits(gateways int) *localLimits {
	return &localLimits{store: limiter.NewMemoryStore(nil), gateways: int64(gateways)}
}

// share is this gateway's part of limit: limit / expected_gateways, at
// least 1.
func (l *localLimits) share(limit int64) int64 { return max(limit/l.gateways, 1) }

// decide decides req on the local store, its limits scaled down; with
// leasesOnly, only its Lease rules, every other rule admitting. The
// decision's states are in the order of req.Rules either way.
func (l *localLimits) decide(ctx context.Context, req limiter.Request, leasesOnly bool) limiter.Decision {
	if len(req.Rules) == 0 {
		return limiter.Decision{Allowed: true}
	}
	m := &l.scaled
	if leasesOnly {
		m = &l.leases
	}
	key := weak.Make(&req.Rules[0])
	rules, ok := m.Load(key)
	if !ok {
		s := make([]limiter.Rule, 0, len(req.Rules))
		for _, r := range req.Rules {
			if leasesOnly && !r.Lease {
				continue
			}
			r.Limit = l.share(r.Limit)
			s = append(s, r)
		}
		var loaded bool
		if rules, loaded = m.LoadOrStore(key, s); !loaded {
			runtime.AddCleanup(&req.Rules[0], func(k weak.Pointer[limiter.Rule]) { m.Delete(k) }, key)
		}
	}
	local := rules.([]limiter.Rule)
	if len(local) == 0 {
		return limiter.Decision{Allowed: true}
	}
	d, err := l.store.Decide(ctx, limiter.Request{Tenant: req.Tenant, Rules: local})
	if err != nil { // only for more than MaxRules rules, which config refuses
		return limiter.Decision{Allowed: true}
	}
	if leasesOnly {
		d = spread(req.Rules, d)
	}
	return d
}

// spread puts the states of d, decided on the Lease rules of all alone,
// in their places among all; the other rules are Undecided.
func spread(all []limiter.Rule, d limiter.Decision) limiter.Decision {
	out := limiter.Decision{Allowed: d.Allowed, Seq: d.Seq, N: len(all)}
	j := 0
	for i := range all {
		if all[i].Lease && j < d.N {
			out.Rules[i] = d.Rules[j]
			j++
		} else {
			out.Rules[i] = limiter.RuleState{Undecided: true}
		}
	}
	return out
}
