package degrade

import (
	"context"
	"sync"

	"github.com/l1gw/l1gw/limiter"
)

// localLimits is fail mode local: each rule enforced in this gateway's
// memory at limit / expected_gateways (at least 1), so N gateways together
// admit about one limit while Redis is gone.
type localLimits struct {
	store    *limiter.MemoryStore
	gateways int64
	scaled   sync.Map // *limiter.Rule (a rule slice's identity) → []limiter.Rule
}

func newLocalLimits(gateways int) *localLimits {
	return &localLimits{store: limiter.NewMemoryStore(nil), gateways: int64(gateways)}
}

func (l *localLimits) decide(ctx context.Context, req limiter.Request) limiter.Decision {
	if len(req.Rules) == 0 {
		return limiter.Decision{Allowed: true}
	}
	rules, ok := l.scaled.Load(&req.Rules[0])
	if !ok {
		s := make([]limiter.Rule, len(req.Rules))
		for i, r := range req.Rules {
			r.Limit = max(r.Limit/l.gateways, 1)
			s[i] = r
		}
		rules, _ = l.scaled.LoadOrStore(&req.Rules[0], s)
	}
	d, err := l.store.Decide(ctx, limiter.Request{Tenant: req.Tenant, Rules: rules.([]limiter.Rule)})
	if err != nil { // only for more than MaxRules rules, which config refuses
		return limiter.Decision{Allowed: true}
	}
	return d
}
