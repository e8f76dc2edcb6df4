package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
)

// TestAOFKeepsDataAcrossARestartInPlace: with AOF on, a primary killed
// and restarted on its port comes back with what it had written a
// second before; without it, empty.
func TestAOFKeepsDataAcrossARestartInPlace(t *testing.T) {
	t.Parallel()
	for _, aof := range []bool{true, false} {
		topo := redistest.Topology(t, redistest.Options{AOF: aof})
		p := topo.Primary()
		if err := p.Client(t).Set(context.Background(), "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond) // appendfsync everysec
		p.Kill()
		p.Restart(t)
		n := p.Client(t).Exists(context.Background(), "k").Val()
		if want := map[bool]int64{true: 1, false: 0}[aof]; n != want {
			t.Fatalf("AOF %v: key exists %d after a restart in place; want %d", aof, n, want)
		}
	}
}
