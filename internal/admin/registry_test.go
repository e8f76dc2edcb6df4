package admin

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/registry"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// newRegistryAdmin is an Admin writing reg, over a config file with plan
// "p", tenant "acme" and upstream "api".
func newRegistryAdmin(t *testing.T, reg *registry.Registry) *Admin {
	t.Helper()
	plans := map[string]tenants.Plan{"p": {Limits: []limiter.Rule{{Name: "per_minute", Limit: 5, Window: time.Minute}}}}
	snap, err := tenants.Build(tenants.Options{KeyHeader: "X-API-Key", Unknown: "reject", Max: 100},
		plans, []tenants.Spec{{ID: "acme", Plan: "p", Keys: []string{"acme-key"}}}, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Parts{Tenants: tenants.NewTable(snap), StoreName: "standalone", Limits: limiter.NewMemoryStore(nil),
		Breaker: func() string { return "closed" }, Token: "tok", Config: func() any { return map[string]string{} },
		Registry: reg, File: func() FileView {
			return FileView{Source: tenants.SourceBoth, Plans: plans, HasTenant: func(id string) bool { return id == "acme" },
				HasUpstream: func(name string) bool { return name == "api" }}
		}})
	if err != nil {
		t.Fatal(err)
	}
	a.SetReady(true)
	return a
}

// downClient is a client of an address nothing listens on.
func downClient(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// exerciseRegistry calls each registry route for each of its statuses:
// on a registry in a real Redis, on none (a, tenants.source config: 409)
// and on one that does not answer (503).
func exerciseRegistry(t *testing.T, do func(ad *Admin, op, path, token, body string) string, paths map[string]string, none *Admin) {
	t.Helper()
	srv := redistest.Server(t)
	c := srv.Client(t)
	r := newRegistryAdmin(t, registry.New(c, c, "oa"))
	down := newRegistryAdmin(t, registry.New(downClient(t), downClient(t), "oa"))
	plan := `{"limits":[{"name":"r","limit":1,"window":"1s"}]}`
	call := func(ad *Admin, op, body string) string { return do(ad, op, paths[op], "tok", body) }
	everywhere := func(op, body string) {
		call(none, op, body)
		call(down, op, body)
	}

	call(r, "PUT /v1/plans/{name}", plan)
	call(r, "PUT /v1/plans/{name}", plan)
	call(r, "PUT /v1/plans/{name}", `{"limits":[{"name":"r","limit":0,"window":"1s"}]}`)
	everywhere("PUT /v1/plans/{name}", plan)
	call(r, "GET /v1/plans", "")
	do(r, "GET /v1/plans", "/v1/plans?limit=0", "tok", "")
	everywhere("GET /v1/plans", "")
	call(r, "GET /v1/plans/{name}", "")
	do(r, "GET /v1/plans/{name}", "/v1/plans/none", "tok", "")
	everywhere("GET /v1/plans/{name}", "")

	call(r, "PUT /v1/tenants/{id}", `{"plan":"gold"}`)
	call(r, "PUT /v1/tenants/{id}", `{"plan":"p"}`)
	call(r, "PUT /v1/tenants/{id}", `{"plan":"nope"}`)
	everywhere("PUT /v1/tenants/{id}", `{"plan":"p"}`)
	call(r, "GET /v1/tenants", "")
	do(r, "GET /v1/tenants", "/v1/tenants?limit=x", "tok", "")
	everywhere("GET /v1/tenants", "")
	call(r, "GET /v1/tenants/{id}", "")
	do(r, "GET /v1/tenants/{id}", "/v1/tenants/none", "tok", "")
	everywhere("GET /v1/tenants/{id}", "")

	var issued IssuedKey
	if err := json.Unmarshal([]byte(call(r, "POST /v1/tenants/{id}/keys", "")), &issued); err != nil || issued.KeyID == "" {
		t.Fatalf("issue a key: %v, %+v", err, issued)
	}
	call(r, "POST /v1/tenants/{id}/keys", `{"rotate_from":"`+issued.KeyID+`"}`)
	do(r, "POST /v1/tenants/{id}/keys", "/v1/tenants/none/keys", "tok", "")
	everywhere("POST /v1/tenants/{id}/keys", "")
	call(r, "GET /v1/tenants/{id}/keys", "")
	do(r, "GET /v1/tenants/{id}/keys", "/v1/tenants/none/keys", "tok", "")
	everywhere("GET /v1/tenants/{id}/keys", "")
	revoke := "DELETE /v1/tenants/{id}/keys/{key_id}"
	do(r, revoke, "/v1/tenants/t1/keys/"+issued.KeyID, "tok", "")
	do(r, revoke, "/v1/tenants/t1/keys/"+issued.KeyID, "tok", "")
	everywhere(revoke, "")

	call(r, "DELETE /v1/tenants/{id}", "")
	call(r, "DELETE /v1/tenants/{id}", "")
	everywhere("DELETE /v1/tenants/{id}", "")
	call(r, "DELETE /v1/plans/{name}", "")
	call(r, "DELETE /v1/plans/{name}", "")
	everywhere("DELETE /v1/plans/{name}", "")
}
