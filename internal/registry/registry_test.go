package registry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/registry"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

var noCheck = func(tenants.Record, map[string]tenants.Plan) error { return nil }

func plan(name string, limit int64) registry.NamedPlan {
	return registry.NamedPlan{Name: name, Plan: tenants.Plan{Limits: []limiter.Rule{{Name: "per_second", Limit: limit, Window: time.Second}}}}
}

func newRegistry(t *testing.T) (*registry.Registry, *redistest.Node) {
	t.Helper()
	srv := redistest.Server(t)
	c := srv.Client(t)
	return registry.New(c, c, "test"), srv
}

func TestWritesAndPages(t *testing.T) {
	ctx := context.Background()
	reg, _ := newRegistry(t)
	created, err := reg.PutPlan(ctx, plan("gold", 10), func(registry.NamedPlan) error { return nil }, noCheck)
	if err != nil || !created {
		t.Fatalf("PutPlan: created %v, %v; want a new plan", created, err)
	}
	if created, err := reg.PutPlan(ctx, plan("gold", 20), func(registry.NamedPlan) error { return nil }, noCheck); err != nil || created {
		t.Fatalf("PutPlan again: created %v, %v; want a replaced plan", created, err)
	}
	for i := range 5 {
		if _, err := reg.PutTenant(ctx, tenants.Record{Spec: tenants.Spec{ID: fmt.Sprintf("t%d", i), Plan: "gold"}}, noCheck, -1); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := reg.Tenants(ctx, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Items {
			ids = append(ids, r.ID)
		}
		if cursor = p.Next; cursor == "" {
			if pages != 2 {
				t.Errorf("got %d pages of 2; want 3 for 5 tenants", pages+1)
			}
			break
		}
	}
	if fmt.Sprint(ids) != "[t0 t1 t2 t3 t4]" {
		t.Errorf("paged tenants %v; want t0..t4 once each, in order", ids)
	}
	// A refused check writes nothing.
	_, err = reg.PutTenant(ctx, tenants.Record{Spec: tenants.Spec{ID: "bad", Plan: "gold"}}, func(tenants.Record, map[string]tenants.Plan) error {
		return errors.New("no")
	}, -1)
	var inv *registry.Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("PutTenant with a refusing check: %v; want *Invalid", err)
	}
	if _, found, _ := reg.Tenant(ctx, "bad"); found {
		t.Error("a refused tenant was stored")
	}
	if err := reg.DeleteTenant(ctx, "nope"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("DeleteTenant of none: %v; want ErrNotFound", err)
	}
}

// TestConcurrentWrites: 40 writes racing on one registry all land (the
// losers of each round back off and start over), each with a version of
// its own.
func TestConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	reg, srv := newRegistry(t)
	if _, err := reg.PutPlan(ctx, plan("p", 1), func(registry.NamedPlan) error { return nil }, noCheck); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			_, err := reg.PutTenant(ctx, tenants.Record{Spec: tenants.Spec{ID: fmt.Sprintf("c%02d", i), Plan: "p"}}, noCheck, -1)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	p, err := reg.Tenants(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	v, err := srv.Client(t).Get(ctx, "{test:registry}:version").Int64()
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(p.Items))+1 != v {
		t.Errorf("%d tenants stored after the plan, version %d; want one version per write", len(p.Items), v)
	}
	if len(p.Items) != 40 {
		t.Errorf("%d of 40 racing writes landed; want all", len(p.Items))
	}
}

// TestKeys: an issued key is stored as its digest; a rotation brings the
// old key's expiry forward, never back; a revoke removes it.
func TestKeys(t *testing.T) {
	ctx := context.Background()
	reg, _ := newRegistry(t)
	if _, err := reg.PutTenant(ctx, tenants.Record{Spec: tenants.Spec{ID: "acme", Plan: "p"}}, noCheck, -1); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	k1 := tenants.IssuedKey{KeyID: "k1", KeyHash: tenants.HashKey("one"), CreatedAt: now}
	k2 := tenants.IssuedKey{KeyID: "k2", KeyHash: tenants.HashKey("two"), CreatedAt: now}
	if err := reg.AddKey(ctx, "acme", k1, nil, noCheck); err != nil {
		t.Fatal(err)
	}
	soon := now.Add(time.Hour)
	if err := reg.AddKey(ctx, "acme", k2, &registry.Rotation{KeyID: "k1", ExpiresAt: soon}, noCheck); err != nil {
		t.Fatal(err)
	}
	if err := reg.AddKey(ctx, "acme", k2, &registry.Rotation{KeyID: "nope", ExpiresAt: soon}, noCheck); !errors.Is(err, registry.ErrNoKey) {
		t.Errorf("rotating an unknown key: %v; want ErrNoKey", err)
	}
	// PUT keeps the issued keys.
	if _, err := reg.PutTenant(ctx, tenants.Record{Spec: tenants.Spec{ID: "acme", Plan: "q"}}, noCheck, -1); err != nil {
		t.Fatal(err)
	}
	rec, _, err := reg.Tenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Issued) != 2 || !rec.Issued[0].ExpiresAt.Equal(soon) || !rec.Issued[1].ExpiresAt.IsZero() || rec.Plan != "q" {
		t.Fatalf("after a rotation and a PUT: %+v; want k1 expiring at %s, k2 not, plan q", rec, soon)
	}
	if err := reg.RevokeKey(ctx, "acme", "k1"); err != nil {
		t.Fatal(err)
	}
	if err := reg.RevokeKey(ctx, "acme", "k1"); !errors.Is(err, registry.ErrNoKey) {
		t.Errorf("revoking twice: %v; want ErrNoKey", err)
	}
	if err := reg.FlushLastUsed(ctx, map[string]int64{"k2": 200}); err != nil {
		t.Fatal(err)
	}
	if err := reg.FlushLastUsed(ctx, map[string]int64{"k2": 100}); err != nil {
		t.Fatal(err)
	}
	used, err := reg.LastUsed(ctx, []string{"k2", "k1"})
	if err != nil || used[0] != 200 || used[1] != 0 {
		t.Errorf("last used %v, %v; want [200 0]: the latest flush wins, never an older one", used, err)
	}
}

// TestSyncerNotifiedAndPolled: a write reaches a running Syncer through
// the notification well before the poll would find it, and a change made
// without a notification is found by the poll.
func TestSyncerNotifiedAndPolled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg, srv := newRegistry(t)
	applied := make(chan *tenants.Registry, 16)
	sy := registry.NewSyncer(reg, registry.SyncOptions{Refresh: time.Hour, FlushInterval: time.Hour,
		Apply: func(r *tenants.Registry) { applied <- r }})
	if err := sy.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-applied; r.Version != 0 || len(r.Tenants) != 0 {
		t.Fatalf("first sync of an empty registry: %+v", r)
	}
	go sy.Run(ctx)
	waitFor(t, func() bool { return sy.Age() >= 0 })
	time.Sleep(100 * time.Millisecond) // the subscription is up
	if _, err := reg.PutTenant(ctx, tenants.Record{Spec: tenants.Spec{ID: "new", Plan: "p"}}, noCheck, -1); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-applied:
		if r.Version != 1 || len(r.Tenants) != 1 || r.Tenants[0].ID != "new" {
			t.Fatalf("notified sync: %+v; want version 1 with tenant new", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a write with a one-hour poll did not reach the syncer: no notification")
	}

	// Polled: a syncer with a short refresh and no notification (the
	// version written by hand, as a lost message would leave it).
	reg2 := registry.New(srv.Client(t), srv.Client(t), "test")
	polled := make(chan *tenants.Registry, 16)
	sy2 := registry.NewSyncer(reg2, registry.SyncOptions{Refresh: 200 * time.Millisecond, FlushInterval: time.Hour,
		Apply: func(r *tenants.Registry) { polled <- r }})
	go sy2.Run(ctx)
	if r := <-polled; r.Version != 1 {
		t.Fatalf("first poll: version %d; want 1", r.Version)
	}
	c := srv.Client(t)
	if err := c.HSet(ctx, "{test:registry}:tenants", "quiet", `{"id":"quiet","plan":"p"}`).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Incr(ctx, "{test:registry}:version").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-polled:
		if r.Version != 2 || len(r.Tenants) != 2 {
			t.Fatalf("polled sync: version %d, %d tenants; want 2 and 2", r.Version, len(r.Tenants))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an unannounced change was not found by the poll")
	}
}

// TestLoadReportsBadRecords: a record that does not decode is reported,
// and the others load.
func TestLoadReportsBadRecords(t *testing.T) {
	ctx := context.Background()
	reg, srv := newRegistry(t)
	c := srv.Client(t)
	c.HSet(ctx, "{test:registry}:tenants", "good", `{"id":"good","plan":"p"}`, "bad", `{"id":"bad","plan":`, "moved", `{"id":"other","plan":"p"}`)
	c.HSet(ctx, "{test:registry}:plans", "p", `{"name":"p","limits":[{"name":"r","limit":1,"window":"1s"}]}`, "x", `{"name":"x","burst":1}`)
	var got *tenants.Registry
	sy := registry.NewSyncer(reg, registry.SyncOptions{Refresh: time.Hour, Apply: func(r *tenants.Registry) { got = r }})
	if err := sy.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got.Tenants) != 1 || got.Tenants[0].ID != "good" || len(got.Plans) != 1 || got.Plans["p"].Limits[0].Window != time.Second {
		t.Fatalf("loaded %+v; want tenant good and plan p", got)
	}
	bad := map[string]bool{}
	for _, p := range got.Bad {
		bad[p.Object+" "+p.Name] = true
	}
	if len(bad) != 3 || !bad["tenant bad"] || !bad["tenant moved"] || !bad["plan x"] {
		t.Errorf("reported %v; want tenant bad, tenant moved and plan x", got.Bad)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// realCheck checks records as the admin API does (no file).
func realCheck(rec tenants.Record, plans map[string]tenants.Plan) error {
	return tenants.CheckRecord(rec, plans, func(string) bool { return false })
}

// TestWritesKeepEveryTenantValid: a write that would leave another tenant
// out of the snapshot is refused in its transaction: a key another tenant
// holds (in any field), a plan change that breaks a tenant on it, a plan
// deleted under a tenant, a tenant past the cap.
func TestWritesKeepEveryTenantValid(t *testing.T) {
	ctx := context.Background()
	reg, _ := newRegistry(t)
	if _, err := reg.PutPlan(ctx, plan("pro", 10), func(registry.NamedPlan) error { return nil }, realCheck); err != nil {
		t.Fatal(err)
	}
	h, h2 := tenants.HashKey("zeta-1"), tenants.HashKey("zeta-2")
	zeta := tenants.Record{Spec: tenants.Spec{ID: "zeta", Plan: "pro", KeyHashes: []string{h, h2},
		Routes: []tenants.RouteSpec{{PathPrefix: "/x", Limits: []limiter.Rule{{Name: "burst", Limit: 1, Window: time.Second}}}}}}
	if _, err := reg.PutTenant(ctx, zeta, realCheck, -1); err != nil {
		t.Fatal(err)
	}
	alpha := tenants.Record{Spec: tenants.Spec{ID: "alpha", Plan: "pro",
		RetiringKeys: []tenants.RetiringKey{{KeyHash: h2, ExpiresAt: time.Now().Add(time.Hour)}}}}
	_, err := reg.PutTenant(ctx, alpha, realCheck, -1)
	var inv *registry.Invalid
	if !errors.As(err, &inv) || !strings.Contains(inv.Error(), "retiring_keys[0].key_hash") {
		t.Errorf("a tenant taking zeta's key: %v; want *Invalid naming retiring_keys[0].key_hash", err)
	}
	// zeta may keep its own keys on a replace, and a freed key may be taken.
	zeta.KeyHashes = []string{h}
	if _, err := reg.PutTenant(ctx, zeta, realCheck, -1); err != nil {
		t.Fatalf("zeta replaced, dropping a key: %v", err)
	}
	if _, err := reg.PutTenant(ctx, alpha, realCheck, -1); err != nil {
		t.Fatalf("alpha taking the freed key: %v", err)
	}
	breaking := plan("pro", 10)
	breaking.Limits = append(breaking.Limits, limiter.Rule{Name: "burst", Limit: 5, Window: time.Second})
	_, err = reg.PutPlan(ctx, breaking, func(registry.NamedPlan) error { return nil }, realCheck)
	var br *registry.Breaks
	if !errors.As(err, &br) || len(br.IDs) != 1 || br.IDs[0] != "zeta" {
		t.Errorf("a plan rule clashing with zeta's route rule: %v; want *Breaks naming zeta", err)
	}
	if err := reg.DeletePlan(ctx, "pro"); !errors.As(err, &br) || len(br.IDs) != 2 {
		t.Errorf("deleting a plan two tenants are on: %v; want *Breaks naming both", err)
	}
	if _, err := reg.PutTenant(ctx, tenants.Record{Spec: tenants.Spec{ID: "third", Plan: "pro"}}, realCheck, 2); !errors.Is(err, registry.ErrFull) {
		t.Errorf("a third tenant with room for 2: %v; want ErrFull", err)
	}
	if _, err := reg.PutTenant(ctx, zeta, realCheck, 2); err != nil {
		t.Errorf("replacing a tenant at the cap: %v; want it done", err)
	}
	// Every tenant still builds.
	var got *tenants.Registry
	sy := registry.NewSyncer(reg, registry.SyncOptions{Refresh: time.Hour, Apply: func(r *tenants.Registry) { got = r }})
	if err := sy.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := tenants.BuildWith(tenants.Options{KeyHeader: "X-API-Key", Unknown: "reject"}, nil, nil, got, func(string) bool { return false })
	if err != nil || s.Len() != 2 || len(s.Problems()) != 0 {
		t.Fatalf("built %v tenants, %v, problems %+v; want zeta and alpha", s, err, s.Problems())
	}
}
