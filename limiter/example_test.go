package limiter_test

import (
	"context"
	"fmt"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// Two rules decided together: the third request is denied by the tighter
// one and recorded in neither.
func ExampleMemoryStore_Decide() {
	now := time.Unix(1_700_000_000, 0)
	store := limiter.NewMemoryStore(func() time.Time { return now })
	req := limiter.Request{Tenant: "acme", Rules: []limiter.Rule{
		{Name: "per_second", Limit: 2, Window: time.Second},
		{Name: "per_minute", Limit: 100, Window: time.Minute},
	}}
	for i := 1; i <= 3; i++ {
		d, _ := store.Decide(context.Background(), req)
		fmt.Printf("request %d: allowed=%v per_second remaining=%d per_minute remaining=%d retry-after=%v\n",
			i, d.Allowed, d.Rules[0].Remaining, d.Rules[1].Remaining, d.RetryAfter())
		now = now.Add(100 * time.Millisecond)
	}
	// Output:
	// request 1: allowed=true per_second remaining=1 per_minute remaining=99 retry-after=0s
	// request 2: allowed=true per_second remaining=0 per_minute remaining=98 retry-after=0s
	// request 3: allowed=false per_second remaining=0 per_minute remaining=98 retry-after=800ms
}

// A shadow rule tried beside an enforced one: it never denies, and says
// when it would have.
func ExampleDecision_ShadowDenied() {
	store := limiter.NewMemoryStore(nil)
	req := limiter.Request{Tenant: "acme", Rules: []limiter.Rule{
		{Name: "per_minute", Limit: 100, Window: time.Minute},
		{Name: "trial", Limit: 2, Window: time.Minute, Mode: limiter.RuleShadow},
	}}
	for i := 1; i <= 3; i++ {
		d, _ := store.Decide(context.Background(), req)
		fmt.Printf("request %d: allowed=%v shadow-denied=%v per_minute remaining=%d trial remaining=%d\n",
			i, d.Allowed, d.ShadowDenied(), d.Rules[0].Remaining, d.Rules[1].Remaining)
	}
	// Output:
	// request 1: allowed=true shadow-denied=false per_minute remaining=99 trial remaining=1
	// request 2: allowed=true shadow-denied=false per_minute remaining=98 trial remaining=0
	// request 3: allowed=true shadow-denied=true per_minute remaining=97 trial remaining=0
}
