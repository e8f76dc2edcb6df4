package degrade

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// downStore is a store whose every decision fails, as with Redis down.
type downStore struct{}

func (downStore) Decide(context.Context, limiter.Request) (limiter.Decision, error) {
	return limiter.Decision{}, errors.New("connection refused")
}
func (downStore) ReplicaDenies(context.Context, limiter.Request, time.Duration) (limiter.Decision, bool, error) {
	return limiter.Decision{}, false, nil
}
func (downStore) Shard(string) string                  { return "" }
func (downStore) Release(string, limiter.Rule, uint64) {}
func (downStore) Renew(string, limiter.Rule, uint64)   {}

// TestLocalLimitsForgetOldRuleSlices: fail mode local keeps each rule
// slice's rules scaled down, by the slice's identity, and every reload
// builds the slices anew: while Redis is down, 200 reloads of one
// tenant's rules leave the entries of the slices still in use, not 200.
func TestLocalLimitsForgetOldRuleSlices(t *testing.T) {
	g, err := New(downStore{}, Settings{Budget: 50 * time.Millisecond, FailMode: FailLocal, ExpectedGateways: 2,
		Breaker: BreakerOptions{Failures: 3, Cooldown: time.Hour}}, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	live := []limiter.Rule{{Name: "per_minute", Limit: 1000, Window: time.Minute}}
	for i := range 200 { // a snapshot per reload: the same rules, a new slice
		rules := []limiter.Rule{{Name: "per_minute", Limit: 1000, Window: time.Minute}}
		if i == 199 {
			rules = live
		}
		var v Verdict
		g.Decide(context.Background(), limiter.Request{Tenant: "acme", Rules: rules}, &v)
		if !v.Degraded || !v.Allowed {
			t.Fatalf("decision %d: %+v; want degraded and allowed", i, v)
		}
	}
	count := func() (n int) {
		g.local.scaled.Range(func(any, any) bool { n++; return true })
		return n
	}
	deadline := time.Now().Add(5 * time.Second)
	for count() > 1 && time.Now().Before(deadline) {
		runtime.GC() // the cleanups run after a collection, in their own goroutine
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(); n != 1 {
		t.Errorf("fail mode local holds %d scaled rule slices after 200 slices of one tenant, one still in use; want 1", n)
	}
	var v Verdict
	g.Decide(context.Background(), limiter.Request{Tenant: "acme", Rules: live}, &v)
	if !v.Degraded || !v.Allowed || count() != 1 {
		t.Errorf("the slice in use, decided again: %+v, %d entries; want degraded, allowed, its one entry", v, count())
	}
	runtime.KeepAlive(live)
}
