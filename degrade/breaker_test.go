package degrade_test

import (
	"testing"
	"time"

	"github.com/l1gw/l1gw/degrade"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestBreakerStateMachine(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	var changes []degrade.State
	b := degrade.NewBreaker(degrade.BreakerOptions{Failures: 3, Cooldown: time.Second}, c.now, func(s degrade.State) { changes = append(changes, s) })
	fail := func() {
		t.Helper()
		tk, ok := b.Allow()
		if !ok {
			t.Fatalf("Allow refused in state %v", b.State())
		}
		b.Done(tk, false)
	}
	fail()
	fail()
	if tk, _ := b.Allow(); true {
		b.Done(tk, true) // a success resets the streak
	}
	fail()
	fail()
	if b.State() != degrade.Closed {
		t.Fatalf("2 failures after a success: %v; want closed", b.State())
	}
	fail()
	if b.State() != degrade.Open {
		t.Fatalf("3 failures in a row: %v; want open", b.State())
	}
	if _, ok := b.Allow(); ok {
		t.Fatal("open breaker allowed a call")
	}
	c.t = c.t.Add(999 * time.Millisecond)
	if _, ok := b.Allow(); ok {
		t.Fatal("1ms before the cooldown ends: allowed a call")
	}
	c.t = c.t.Add(time.Millisecond)
	probe, ok := b.Allow()
	if !ok || b.State() != degrade.HalfOpen {
		t.Fatalf("after the cooldown: allowed=%v state=%v; want one probe, half-open", ok, b.State())
	}
	if _, ok := b.Allow(); ok {
		t.Fatal("a second call went out while the probe is out")
	}
	b.Done(probe, false)
	if b.State() != degrade.Open {
		t.Fatalf("failed probe: %v; want open again", b.State())
	}
	c.t = c.t.Add(time.Second)
	probe, _ = b.Allow()
	b.Done(probe, true)
	if b.State() != degrade.Closed {
		t.Fatalf("good probe: %v; want closed", b.State())
	}
	want := []degrade.State{degrade.Open, degrade.HalfOpen, degrade.Open, degrade.HalfOpen, degrade.Closed}
	if len(changes) != len(want) {
		t.Fatalf("state changes %v; want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("state changes %v; want %v", changes, want)
		}
	}
}

func TestBreakerIgnoresLateResults(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	b := degrade.NewBreaker(degrade.BreakerOptions{Failures: 1, Cooldown: time.Second}, c.now, nil)
	slow, _ := b.Allow() // goes out while closed
	fast, _ := b.Allow()
	b.Done(fast, false) // opens
	c.t = c.t.Add(time.Second)
	probe, _ := b.Allow() // half-open
	b.Done(slow, false)   // the slow call from before: not the probe's result
	if b.State() != degrade.HalfOpen {
		t.Fatalf("a late failure changed a half-open breaker to %v", b.State())
	}
	b.Done(probe, true)
	if b.State() != degrade.Closed {
		t.Fatalf("probe succeeded: %v; want closed", b.State())
	}
}
