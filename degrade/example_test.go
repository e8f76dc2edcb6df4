package degrade_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

// A store that cannot decide never fails a request: the fail mode says
// what happens, the verdict says it was degraded, and after three failed
// calls the breaker stops asking the store.
func ExampleGuard_Decide() {
	store := &fakeStore{err: errors.New("dial tcp 10.0.0.1:6379: connection refused")}
	for _, mode := range []string{degrade.FailOpen, degrade.FailClosed} {
		g, _ := degrade.New(store, degrade.Settings{Budget: 10 * time.Millisecond, FailMode: mode,
			Breaker: degrade.BreakerOptions{Failures: 3, Cooldown: time.Second}}, degrade.Options{Log: quiet})
		var v degrade.Verdict
		for range 4 {
			g.Decide(context.Background(), limiter.Request{Tenant: "acme", Rules: []limiter.Rule{{Name: "r", Limit: 10, Window: time.Minute}}}, &v)
			fmt.Printf("%s: allowed=%v degraded=%v refused=%v breaker=%v\n", mode, v.Allowed, v.Degraded, v.Refused, g.BreakerState())
		}
	}
	// Output:
	// open: allowed=true degraded=true refused=false breaker=closed
	// open: allowed=true degraded=true refused=false breaker=closed
	// open: allowed=true degraded=true refused=false breaker=open
	// open: allowed=true degraded=true refused=false breaker=open
	// closed: allowed=false degraded=true refused=true breaker=closed
	// closed: allowed=false degraded=true refused=true breaker=closed
	// closed: allowed=false degraded=true refused=true breaker=open
	// closed: allowed=false degraded=true refused=true breaker=open
}
