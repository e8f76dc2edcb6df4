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
