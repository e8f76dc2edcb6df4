package registry

import (
	"testing"
	"time"
)

// TestAnAgeNeverConfirmedShowsAsMinusOne: l1gw_tenants_snapshot_age_seconds
// is -1 until the copy is first found current, on every tick: Age's -1 ns
// showed as about 0 s, a fresh copy, after the first tick.
func TestAnAgeNeverConfirmedShowsAsMinusOne(t *testing.T) {
	s := &Syncer{}
	if got := ageSeconds(s.Age()); got != -1 {
		t.Fatalf("never confirmed: %v s; want -1", got)
	}
	s.confirmed.Store(time.Now().Add(-3 * time.Second).UnixNano())
	if got := ageSeconds(s.Age()); got < 3 || got > 60 {
		t.Fatalf("confirmed 3 s ago: %v s; want about 3", got)
	}
}
