package limiter

import (
	"context"
	"testing"
	"time"
)

// round runs a whole round of r's retries, as releaseLoop does with
// nothing queued.
func round(r *retries, ctx context.Context, write func(context.Context, []release) []release) {
	r.start()
	for r.next() != nil {
		r.step(ctx, write)
	}
}

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
		round(&r, context.Background(), fail)
		if r.wait != want || len(r.held) != 1 {
			t.Fatalf("after a failed round: wait %v, %d held; want %v, 1", r.wait, len(r.held), want)
		}
	}
	round(&r, context.Background(), land)
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
	round(&r, ctx, func(_ context.Context, b []release) []release { sent += len(b); return nil })
	if sent != 0 {
		t.Fatalf("a round after the store stopped sent %d; want 0", sent)
	}
	r.giveUp()
	if len(r.held) != 0 {
		t.Fatalf("held %d after giving up; want 0", len(r.held))
	}
}

// TestANewReleaseGoesOutBetweenRetryBatches: while a round of retries
// is sent again, a batch at a time, a release queued meanwhile goes out
// after the batch being sent, before the round's next. The whole round
// went first: with 8 192 held and Redis silent for their shard, 32
// batches of a second each, while every new release waited (and the
// queue, full, dropped them).
func TestANewReleaseGoesOutBetweenRetryBatches(t *testing.T) {
	const old = 3 * releaseBatch // failed once, sent again in 3 batches
	queue := make(chan release, releaseQueue)
	type call struct {
		retry bool // a batch of the old releases sent again
		n     int
	}
	calls := make(chan call, 16)
	gate := make(chan struct{}) // lets one batch sent again return
	sent := map[uint64]bool{}   // the old releases sent once
	write := func(_ context.Context, b []release) []release {
		if b[0].seq > old { // a new release
			calls <- call{n: len(b)}
			return nil
		}
		if !sent[b[0].seq] { // the first send: refused at once
			for _, rel := range b {
				sent[rel.seq] = true
			}
			return b
		}
		calls <- call{retry: true, n: len(b)}
		<-gate // Redis silent: the batch waits, then fails
		return b
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); releaseLoop(ctx, queue, write) }()
	defer func() { cancel(); close(gate); <-done }()
	until := time.Now().Add(time.Minute)
	for i := range old {
		queue <- release{seq: uint64(i + 1), until: until}
	}
	next := func() call {
		t.Helper()
		select {
		case c := <-calls:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no write for 10 s")
			return call{}
		}
	}
	if c := next(); !c.retry { // the round begins, after releaseRetry
		t.Fatalf("first write seen: %+v; want a batch sent again", c)
	}
	queue <- release{seq: old + 1, until: until} // queued while the batch waits
	gate <- struct{}{}
	if c := next(); c.retry {
		t.Fatal("the round's next batch went out before the release queued meanwhile; want the release first")
	}
	gate <- struct{}{}
}
