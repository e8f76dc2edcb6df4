package limiter

import (
	"errors"
	"testing"
)

// failedRoute is a fixedRoute that counts what it is told failed.
type failedRoute struct {
	fixedRoute
	told int
}

func (r *failedRoute) failed(*pipe, error) { r.told++ }

// TestAnOverloadIsNotTheNodesFailure: a decision shed at once by the
// gateway's own full queue (ErrOverload) is not told to the route as the
// node's failure, which on Cluster unpins a replica that was asked
// nothing and reloads the slot map (found by a review). One shed after
// waiting past the queue timeout still is: its node's lanes may be slow.
func TestAnOverloadIsNotTheNodesFailure(t *testing.T) {
	p := newPipe(testCfg(), fixedAddr("127.0.0.1:1"))
	p.once.Do(func() {}) // no lanes: the queue stays full
	for range cap(p.queue) {
		p.queue <- decideOp(1)
	}
	r := &failedRoute{fixedRoute: fixedRoute{p}}
	if _, _, err := carry(r, decideOp(2)); !errors.Is(err, ErrOverload) {
		t.Fatalf("carry on a full queue: %v; want ErrOverload", err)
	}
	if r.told != 0 {
		t.Fatalf("the route was told of %d failures; want none", r.told)
	}
}
