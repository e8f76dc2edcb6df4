package limiter

import (
	"context"
	"testing"
	"time"
)

// TestAFailedReleaseIsKeptUntilItsLeaseLeftItsWindow: a release that
// failed is held for another round while its lease may still count, and
// given up once it has left its window or when releaseQueue are held.
func TestAFailedReleaseIsKeptUntilItsLeaseLeftItsWindow(t *testing.T) {
	now := time.Now()
	var r retries
	r.add([]release{{seq: 1, until: now.Add(time.Minute)}, {seq: 2, until: now}}, now)
	if len(r.held) != 1 || r.held[0].seq != 1 {
		t.Fatalf("held %+v; want only seq 1 (seq 2 left its window)", r.held)
	}
	many := make([]release, releaseQueue)
	for i := range many {
		many[i] = release{seq: uint64(i + 2), until: now.Add(time.Minute)}
	}
	r.add(many, now)
	if len(r.held) != releaseQueue {
		t.Fatalf("held %d; want at most %d", len(r.held), releaseQueue)
	}
}

// TestTheRetryWaitDoublesWhileReleasesFail: each round that still fails
// doubles the wait up to releaseRetryMax; once nothing is held the next
// failure waits releaseRetry again.
func TestTheRetryWaitDoublesWhileReleasesFail(t *testing.T) {
	fail := func(_ context.Context, b []release) []release { return b }
	land := func(context.Context, []release) []release { return nil }
	r := retries{held: []release{{seq: 1, until: time.Now().Add(time.Minute)}}}
	for _, want := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second} {
		r.round(context.Background(), fail)
		if r.wait != want || len(r.held) != 1 {
			t.Fatalf("after a failed round: wait %v, %d held; want %v, 1", r.wait, len(r.held), want)
		}
	}
	r.round(context.Background(), land)
	r.arm()
	if r.wait != 0 || r.due != nil || len(r.held) != 0 {
		t.Fatalf("after a round that landed: wait %v, due set %v, %d held; want 0, false, 0", r.wait, r.due != nil, len(r.held))
	}
}

// TestRetriesStopWithTheStore: once Run's context has ended a round sends
// nothing, and what is held is given up.
func TestRetriesStopWithTheStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sent := 0
	r := retries{held: []release{{seq: 1, until: time.Now().Add(time.Minute)}}}
	r.round(ctx, func(_ context.Context, b []release) []release { sent += len(b); return nil })
	if sent != 0 {
		t.Fatalf("a round after the store stopped sent %d; want 0", sent)
	}
	r.giveUp()
	if len(r.held) != 0 {
		t.Fatalf("held %d after giving up; want 0", len(r.held))
	}
}
