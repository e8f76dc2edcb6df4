package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/registry"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// BenchmarkRegistryLoad reads a registry of 100 000 tenants (each with
// one issued key and a limit of its own) from a real Redis and builds the
// snapshot from it: what a gateway does at start and on each change.
// It reports the means of the read and of the read and build, and the
// snapshot's heap per tenant.
func BenchmarkRegistryLoad(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	srv := redistest.Server(b)
	c := srv.Client(b)
	reg := registry.New(c, c, "bench")
	p := c.Pipeline()
	plan, _ := json.Marshal(registry.NamedPlan{Name: "gold", Plan: tenants.Plan{Limits: []limiter.Rule{{Name: "per_minute", Limit: 600, Window: time.Minute}}}})
	p.HSet(ctx, "{bench:registry}:plans", "gold", plan)
	now := time.Now().UTC()
	for i := range n {
		id := fmt.Sprintf("tenant-%06d", i)
		rec := tenants.Record{Spec: tenants.Spec{ID: id, Plan: "gold", Limits: []limiter.Rule{{Name: "per_second", Limit: 20, Window: time.Second}}},
			Issued: []tenants.IssuedKey{{KeyID: fmt.Sprintf("k%015x", i), KeyHash: tenants.HashKey(id), CreatedAt: now}}}
		v, _ := json.Marshal(rec)
		p.HSet(ctx, "{bench:registry}:tenants", id, v)
		if p.Len() >= 1000 {
			if _, err := p.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	opts := tenants.Options{KeyHeader: "X-API-Key", Unknown: tenants.UnknownReject, Max: n, MetricsMax: 1000}
	var got *tenants.Registry
	sy := registry.NewSyncer(reg, registry.SyncOptions{Refresh: time.Hour, Apply: func(r *tenants.Registry) { got = r }})
	var reads, totals time.Duration
	var heap int64
	iters := 0
	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start := time.Now()
		c.Incr(ctx, "{bench:registry}:version") // a change: Sync reads it whole
		if err := sy.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		read := time.Since(start)
		got.Use = tenants.NewKeyUse()
		s, err := tenants.BuildWith(opts, nil, nil, got, func(string) bool { return true })
		if err != nil || s.Len() != n || len(s.Problems()) != 0 {
			b.Fatalf("built %d tenants, %v, problems %v", s.Len(), err, s.Problems())
		}
		total := time.Since(start)
		got = nil
		runtime.GC()
		runtime.ReadMemStats(&m1)
		reads, totals, heap, iters = reads+read, totals+total, heap+int64(m1.HeapAlloc)-int64(m0.HeapAlloc), iters+1
		runtime.KeepAlive(s)
	}
	b.ReportMetric(float64(reads.Milliseconds())/float64(iters), "read-ms")
	b.ReportMetric(float64(totals.Milliseconds())/float64(iters), "read+build-ms")
	b.ReportMetric(float64(heap)/float64(iters)/n, "heap-B/tenant")
}
