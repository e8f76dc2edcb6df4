package degrade_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

// shardedStore fails the tenants of broken shards; a tenant's shard is
// the part of its name before the first '-'. A tenant of shard "evicting"
// gets a decision the store marks degraded.
type shardedStore struct {
	mu     sync.Mutex
	broken map[string]bool
	calls  map[string]int
}

func (s *shardedStore) Shard(tenant string) string { return strings.SplitN(tenant, "-", 2)[0] }

func (s *shardedStore) Decide(_ context.Context, req limiter.Request) (limiter.Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.Shard(req.Tenant)
	s.calls[sh]++
	if s.broken[sh] {
		return limiter.Decision{}, errors.New("dial tcp: connection refused")
	}
	d := limiter.Decision{Allowed: true, N: len(req.Rules)}
	if sh == "evicting" {
		d.Degraded, d.Why = true, limiter.WhyEvicting
	}
	return d, nil
}

func (s *shardedStore) Release(string, limiter.Rule, uint64) {}
func (s *shardedStore) Renew(string, limiter.Rule, uint64)   {}

func (s *shardedStore) ReplicaDenies(context.Context, limiter.Request, time.Duration) (limiter.Decision, bool, error) {
	return limiter.Decision{}, false, nil
}

func decideFor(g *degrade.Guard, tenant string) degrade.Verdict {
	return decide(g, limiter.Request{Tenant: tenant, Rules: req.Rules})
}

// TestBreakersArePerShard: a failing shard opens its own breaker only;
// the tenants of the other shards keep exact decisions.
func TestBreakersArePerShard(t *testing.T) {
	store := &shardedStore{broken: map[string]bool{"a": true}, calls: map[string]int{}}
	g := newGuard(t, store, settings(degrade.FailOpen))
	for range 10 {
		if v := decideFor(g, "a-acme"); !v.Degraded {
			t.Fatal("a tenant of the broken shard: not degraded")
		}
		if v := decideFor(g, "b-beta"); v.Degraded || !v.Allowed {
			t.Fatalf("a tenant of a healthy shard while another is broken: %+v; want exact", v)
		}
	}
	if g.BreakerState() != degrade.Open {
		t.Fatalf("breaker state %v; want open (shard a's)", g.BreakerState())
	}
	if store.calls["a"] != 3 || store.calls["b"] != 10 {
		t.Fatalf("calls a=%d b=%d; want 3 (until a's breaker opened) and 10", store.calls["a"], store.calls["b"])
	}
}

// TestStoreDegradedIsCountedByWhy: a decision the store marks degraded is
// counted under the store's reason, and does not open the breaker.
func TestStoreDegradedIsCountedByWhy(t *testing.T) {
	store := &shardedStore{calls: map[string]int{}}
	g := newGuard(t, store, settings(degrade.FailOpen))
	c := metrics.GetOrCreateCounter(`l1gw_degraded_decisions_total{reason="evicting"}`)
	before := c.Get()
	for range 5 {
		if v := decideFor(g, "evicting-acme"); !v.Degraded || !v.Allowed {
			t.Fatalf("got %+v; want a degraded admission", v)
		}
	}
	if n := c.Get() - before; n != 5 {
		t.Fatalf("degraded{reason=evicting} rose by %d; want 5", n)
	}
	if g.BreakerState() != degrade.Closed {
		t.Fatalf("breaker %v; want closed: Redis answered", g.BreakerState())
	}
}

// TestBreakerLogSaysSinceWhenAndWhy: the warning of a decision degraded by
// an open breaker names the shard, when it opened and the error before.
func TestBreakerLogSaysSinceWhenAndWhy(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	store := &shardedStore{broken: map[string]bool{"a": true}, calls: map[string]int{}}
	g, err := degrade.New(store, settings(degrade.FailOpen), degrade.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		decideFor(g, "a-acme") // opens the breaker; logs the first error
	}
	time.Sleep(1100 * time.Millisecond) // warnings are at most one a second
	decideFor(g, "a-acme")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("log line %q: %v", lines[len(lines)-1], err)
	}
	if last["reason"] != "breaker" || last["shard"] != "a" || !strings.Contains(last["after_err"].(string), "connection refused") {
		t.Fatalf("breaker warning %v; want reason breaker, shard a, after_err naming the error", last)
	}
	if since, err := time.Parse(time.RFC3339Nano, last["breaker_open_since"].(string)); err != nil || time.Since(since) > time.Minute {
		t.Fatalf("breaker_open_since %v (%v); want when it opened", last["breaker_open_since"], err)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["kind"] != limiter.KindConnection || first["reason"] != "error" {
		t.Fatalf("first warning %v; want reason error, kind connection", first)
	}
}
