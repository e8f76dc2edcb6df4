package limiter

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
)

// TestWriteClientRefusesANonPrimary: the hook on every write connection
// refuses a node whose ROLE is not master (a stale primary Sentinel demoted,
// or a replica it names before promoting it).
func TestWriteClientRefusesANonPrimary(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1})
	for _, tc := range []struct {
		name string
		node *redistest.Node
		want error
	}{
		{"primary", topo.Primary(), nil},
		{"replica", topo.Replicas()[0], ErrNotPrimary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: tc.node.Addr(), OnConnect: mustBeMaster, MaxRetries: -1, DialTimeout: time.Second})
			defer c.Close()
			err := c.Ping(context.Background()).Err()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("PING through the write hook on the %s: %v; want %v", tc.name, err, tc.want)
			}
		})
	}
}
