package degrade_test

import (
	"testing"
	"time"

	"github.com/l1gw/l1gw/degrade"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// failOnce lets one call out of b, which must allow it, and fails it.
func failOnce(t *testing.T, b *degrade.Breaker) {
	t.Helper()
	tk, ok := b.Allow()
	if !ok {
		t.Fatalf("Allow refused in state %v", b.State())
	}
	b.Done(tk, false)
}

func TestBreakerStateMachine(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	var changes []degrade.State
	b := degrade.NewBreaker(degrade.BreakerOptions{Failures: 3, Cooldown: time.Second}, c.now, func(s degrade.State) { changes = append(changes, s) })
	fail := func() { t.Helper(); failOnce(t, b) }
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

// TestBreakerCooldownBacksOff: the cooldown starts short, doubles with
// each failed probe up to the longest, doubles again when the dependency
// fails soon after a good probe (a flap), and starts short again once the
// breaker stayed closed for the longest cooldown.
func TestBreakerCooldownBacksOff(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	b := degrade.NewBreaker(degrade.BreakerOptions{Failures: 1, Cooldown: 100 * time.Millisecond, MaxCooldown: time.Second}, c.now, nil)
	fail := func() { t.Helper(); failOnce(t, b) }
	// opensFor checks that the breaker, just opened, lets its probe out
	// after want and not 1ms before, and returns the probe's ticket.
	opensFor := func(step string, want time.Duration) degrade.Ticket {
		t.Helper()
		if b.State() != degrade.Open {
			t.Fatalf("%s: %v; want open", step, b.State())
		}
		if got := b.Cooldown(); got != want {
			t.Fatalf("%s: cooldown %v; want %v", step, got, want)
		}
		c.t = c.t.Add(want - time.Millisecond)
		if _, ok := b.Allow(); ok {
			t.Fatalf("%s: a probe 1ms before the cooldown of %v ended", step, want)
		}
		c.t = c.t.Add(time.Millisecond)
		probe, ok := b.Allow()
		if !ok {
			t.Fatalf("%s: no probe after the cooldown of %v", step, want)
		}
		return probe
	}
	fail()
	probe := opensFor("first opening", 100*time.Millisecond)
	for _, want := range []time.Duration{200, 400, 800, 1000, 1000} {
		b.Done(probe, false)
		probe = opensFor("failed probe", want*time.Millisecond)
	}
	b.Done(probe, true)
	c.t = c.t.Add(500 * time.Millisecond)
	fail() // 500ms after the good probe: a flap
	probe = opensFor("failing again 500ms after closing", time.Second)
	b.Done(probe, true)
	c.t = c.t.Add(time.Second)
	fail() // closed for the longest cooldown: a new fault
	probe = opensFor("failing again 1s after closing", 100*time.Millisecond)
	b.Done(probe, true)
	c.t = c.t.Add(300 * time.Millisecond)
	fail()
	opensFor("failing again 300ms after closing", 200*time.Millisecond)
}

// TestBreakerCooldownNeverBelowItsFirst: a MaxCooldown below Cooldown (or
// unset) keeps the cooldown at Cooldown.
func TestBreakerCooldownNeverBelowItsFirst(t *testing.T) {
	for _, longest := range []time.Duration{0, 50 * time.Millisecond} {
		c := &clock{t: time.Unix(1_700_000_000, 0)}
		b := degrade.NewBreaker(degrade.BreakerOptions{Failures: 1, Cooldown: time.Second, MaxCooldown: longest}, c.now, nil)
		for i := range 3 {
			tk, _ := b.Allow()
			b.Done(tk, false)
			if got := b.Cooldown(); got != time.Second {
				t.Fatalf("MaxCooldown %v, opening %d: cooldown %v; want 1s", longest, i+1, got)
			}
			c.t = c.t.Add(time.Second)
		}
	}
}
