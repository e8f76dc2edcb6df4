package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/registry"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// apiCall is one call to an Admin with the right token.
func apiCall(a *Admin, method, path, body string) (int, string) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI("http://admin.test" + path)
	ctx.Request.Header.Set("Authorization", "Bearer tok")
	ctx.Request.SetBodyString(body)
	a.Handler()(&ctx)
	return ctx.Response.StatusCode(), string(ctx.Response.Body())
}

func registryAdmin(t *testing.T) *Admin {
	t.Helper()
	c := redistest.Server(t).Client(t)
	return newRegistryAdmin(t, registry.New(c, c, "api"))
}

// TestRegistryValidation: each invalid body or argument is a 400
// problem naming its field, and writes nothing.
func TestRegistryValidation(t *testing.T) {
	a := registryAdmin(t)
	if code, body := apiCall(a, "PUT", "/v1/plans/gold", `{"limits":[{"name":"r","limit":1,"window":"1s"}]}`); code != 201 {
		t.Fatalf("PUT plan: %d %s", code, body)
	}
	if code, body := apiCall(a, "PUT", "/v1/tenants/t1", `{"plan":"gold"}`); code != 201 {
		t.Fatalf("PUT tenant: %d %s", code, body)
	}
	rule := func(r string) string { return `{"plan":"gold","limits":[` + r + `]}` }
	for _, c := range []struct{ method, path, body, field string }{
		{"PUT", "/v1/tenants/t2", `{"plan":"none"}`, "plan"},
		{"PUT", "/v1/tenants/t2", `{"id":"t3","plan":"gold"}`, "id"},
		{"PUT", "/v1/tenants/t2", `{"plan":"gold","keys":["plain"]}`, "keys"},
		{"PUT", "/v1/tenants/t2", `{"plan":"gold","upstream":"nope"}`, "upstream"},
		{"PUT", "/v1/tenants/t2", `{"plan":"gold","key_hashes":["sha256:12"]}`, "key_hashes[0]"},
		// Another spelling of a key's hash would give the key two owners.
		{"PUT", "/v1/tenants/t2", `{"plan":"gold","key_hashes":["` + strings.ToUpper(hashOf("x")) + `"]}`, "key_hashes[0]"},
		{"PUT", "/v1/tenants/t2", `{"plan":"gold","key_hashes":["sha256:` + strings.ToUpper(strings.TrimPrefix(hashOf("x"), "sha256:")) + `"]}`, "key_hashes[0]"},
		{"PUT", "/v1/tenants/t2", `{"plan":"gold","retiring_keys":[{"key":"plain","expires_at":"2030-01-01T00:00:00Z"}]}`, "retiring_keys[0].key"},
		{"PUT", "/v1/tenants/t2", `{"plan":"gold","retiring_keys":[{"key_hash":"` + hashOf("x") + `"}]}`, "retiring_keys[0].expires_at"},
		{"PUT", "/v1/tenants/t2", `{"plan":"gold","key_hashes":["` + hashOf("acme-key") + `"]}`, "key_hashes[0]"},
		{"PUT", "/v1/tenants/t2", rule(`{"name":"r","limit":0,"window":"1s"}`), "limits[0].limit"},
		{"PUT", "/v1/tenants/t2", rule(`{"name":"r","limit":1,"window":"0s"}`), "limits[0].window"},
		{"PUT", "/v1/tenants/t2", rule(`{"name":"r b","limit":1,"window":"1s"}`), "limits[0].name"},
		{"PUT", "/v1/tenants/t2", rule(`{"name":"r","limit":1,"window":"1s","cost":-1}`), "limits[0].cost"},
		{"PUT", "/v1/tenants/t2", `{"plan":"gold","routes":[{"path_prefix":"/x","limits":[{"name":"per_second","limit":1,"window":"2s"}]},{"path_prefix":"/y","limits":[{"name":"per_second","limit":1,"window":"3s"}]}]}`, "routes[1].limits[0].name"},
		{"PUT", "/v1/tenants/t2", `{"plan":"gold","bogus":1}`, "bogus"},
		{"PUT", "/v1/tenants/t2", `not json`, ""},
		{"PUT", "/v1/tenants/..", `{"plan":"gold"}`, "id"},
		{"PUT", "/v1/plans/silver", `{"limits":[{"name":"r","limit":1,"window":"soon"}]}`, "limits[0].window"},
		{"PUT", "/v1/plans/silver", `{"name":"gold","limits":[]}`, "name"},
		{"PUT", "/v1/plans/silver", `{"limits":[{"name":"r","limit":1,"window":"1s"},{"name":"r","limit":2,"window":"1s"}]}`, "limits[1].name"},
		{"PUT", "/v1/plans/bad%20name", `{"limits":[]}`, "name"},
		{"POST", "/v1/tenants/t1/keys", `{"expires_at":"2001-01-01T00:00:00Z"}`, "expires_at"},
		{"POST", "/v1/tenants/t1/keys", `{"rotate_from":"k1"}`, "expires_at"},
		{"POST", "/v1/tenants/t1/keys", `{"expires_at":"2200-12-31T20:00:00-08:00"}`, "expires_at"}, // 2201 in UTC
		{"POST", "/v1/tenants/t1/keys", `{"rotate_from":"k1","expires_at":"2100-01-01T00:00:00Z"}`, "rotate_from"},
		{"POST", "/v1/tenants/t1/keys", `{"key":"chosen"}`, "key"},
		{"GET", "/v1/tenants?limit=0", "", "limit"},
		{"GET", "/v1/tenants?limit=1001", "", "limit"},
		{"GET", "/v1/tenants?cursor=a%20b", "", "cursor"},
	} {
		code, body := apiCall(a, c.method, c.path, c.body)
		var p problemBody
		if err := json.Unmarshal([]byte(body), &p); err != nil || code != 400 || p.Status != 400 || p.Detail == "" {
			t.Errorf("%s %s %s: %d %s; want a 400 problem", c.method, c.path, c.body, code, body)
			continue
		}
		if c.field != "" && !hasField(p.Errors, c.field) {
			t.Errorf("%s %s %s: errors %+v; want one naming %q", c.method, c.path, c.body, p.Errors, c.field)
		}
	}
	_, body := apiCall(a, "GET", "/v1/tenants", "")
	if strings.Contains(body, `"t2"`) || strings.Contains(body, `"..`) {
		t.Errorf("a refused write was stored: %s", body)
	}
	_, body = apiCall(a, "GET", "/v1/plans", "")
	if strings.Contains(body, "silver") {
		t.Errorf("a refused plan was stored: %s", body)
	}
}

func hasField(errs []fieldError, field string) bool {
	for _, e := range errs {
		if e.Field == field {
			return true
		}
	}
	return false
}

func hashOf(key string) string { return tenants.HashKey(key) }

// TestRegistryPagination: listing in pages of 3 returns every tenant once,
// in order, and the last page has no cursor.
func TestRegistryPagination(t *testing.T) {
	a := registryAdmin(t)
	apiCall(a, "PUT", "/v1/plans/gold", `{"limits":[{"name":"r","limit":1,"window":"1s"}]}`)
	for i := range 8 {
		if code, body := apiCall(a, "PUT", fmt.Sprintf("/v1/tenants/t%d", i), `{"plan":"gold"}`); code != 201 {
			t.Fatalf("PUT t%d: %d %s", i, code, body)
		}
	}
	var got []string
	cursor, pages := "", 0
	for {
		code, body := apiCall(a, "GET", "/v1/tenants?limit=3&cursor="+cursor, "")
		var page struct {
			Tenants []TenantBody `json:"tenants"`
			Next    string       `json:"next_cursor"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil || code != 200 {
			t.Fatalf("page %d: %d %s", pages, code, body)
		}
		pages++
		for _, tb := range page.Tenants {
			got = append(got, tb.ID)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if fmt.Sprint(got) != "[t0 t1 t2 t3 t4 t5 t6 t7]" || pages != 3 {
		t.Errorf("paged %v in %d pages; want t0..t7 in 3", got, pages)
	}
	for _, q := range []string{"limit=1000&limit=1", "cursor=t1&cursor=t5"} {
		if code, body := apiCall(a, "GET", "/v1/tenants?"+q, ""); code != 400 {
			t.Errorf("GET /v1/tenants?%s: %d %s; want 400 (a parameter twice)", q, code, body)
		}
	}
}

// TestKeyShownOnce: an issued key is in the answer that issued it, and in
// no later answer and no log line; the audit lines name the key's ID.
func TestKeyShownOnce(t *testing.T) {
	a := registryAdmin(t)
	var logs bytes.Buffer
	a.log = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	apiCall(a, "PUT", "/v1/plans/gold", `{"limits":[{"name":"r","limit":1,"window":"1s"}]}`)
	apiCall(a, "PUT", "/v1/tenants/t1", `{"plan":"gold"}`)
	code, body := apiCall(a, "POST", "/v1/tenants/t1/keys", "")
	var k IssuedKey
	if err := json.Unmarshal([]byte(body), &k); err != nil || code != 201 || !strings.HasPrefix(k.Key, "l1gw_") {
		t.Fatalf("issue: %d %s", code, body)
	}
	code, body = apiCall(a, "POST", "/v1/tenants/t1/keys", `{"rotate_from":"`+k.KeyID+`","expires_at":"2100-01-01T00:00:00Z"}`)
	var k2 IssuedKey
	if err := json.Unmarshal([]byte(body), &k2); err != nil || code != 201 || k2.Key == k.Key {
		t.Fatalf("rotate: %d %s", code, body)
	}
	var later []string
	for _, c := range [][2]string{{"GET", "/v1/tenants"}, {"GET", "/v1/tenants/t1"}, {"GET", "/v1/tenants/t1/keys"},
		{"PUT", "/v1/tenants/t1"}, {"GET", "/v1/config"}, {"GET", "/readyz"}, {"DELETE", "/v1/tenants/t1/keys/" + k.KeyID},
		{"DELETE", "/v1/tenants/t1/keys/" + k2.Key}} { // a key pasted as its ID
		body := ""
		if c[0] == "PUT" {
			body = `{"plan":"gold"}`
		}
		_, out := apiCall(a, c[0], c[1], body)
		later = append(later, out)
	}
	_, out := apiCall(a, "POST", "/v1/tenants/t1/keys", `{"rotate_from":"`+k2.Key+`","expires_at":"2100-01-01T00:00:00Z"}`)
	later = append(later, out)
	all := strings.Join(later, "\n") + logs.String()
	for _, key := range []string{k.Key, k2.Key} {
		if strings.Contains(all, key) {
			t.Errorf("the key %q appears after its issue:\n%s", key, all)
		}
	}
	if !strings.Contains(later[2], k.KeyID) || !strings.Contains(later[2], `"expires_at":"2100-01-01T00:00:00Z"`) {
		t.Errorf("keys list %s; want %s expiring in 2100 (rotated)", later[2], k.KeyID)
	}
	for _, w := range []string{`"action":"key.issue","tenant":"t1","status":201`, `"action":"key.rotate","tenant":"t1","status":201`,
		`"action":"key.revoke","tenant":"t1","status":204`, `"key_id":"` + k.KeyID + `"`, `"action":"tenant.put"`} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("audit log lacks %s:\n%s", w, logs.String())
		}
	}
}

// TestNoKeyForAFileTenant: a key for a tenant the config file defines is
// refused (409), as a PUT of it is: the file's tenant is served, so the
// key would never work.
func TestNoKeyForAFileTenant(t *testing.T) {
	a := registryAdmin(t)
	if code, body := apiCall(a, "POST", "/v1/tenants/acme/keys", ""); code != 409 || !strings.Contains(body, "config file defines this tenant") {
		t.Errorf("POST /v1/tenants/acme/keys: %d %s; want 409, the file's tenant", code, body)
	}
	if code, body := apiCall(a, "GET", "/v1/tenants/acme/keys", ""); strings.Contains(body, `"key_id"`) {
		t.Errorf("GET /v1/tenants/acme/keys after the refusal: %d %s; want no key stored", code, body)
	}
}

// TestTenantsMaxCountsAShadowedTenantOnce: a registry tenant that the
// file's tenant of the same ID shadows counts once against tenants.max,
// as the file's: with the file's acme and the registry's acme (written
// by a gateway whose file has no acme), a max of 2 has room for one more.
func TestTenantsMaxCountsAShadowedTenantOnce(t *testing.T) {
	c := redistest.Server(t).Client(t)
	reg := registry.New(c, c, "api")
	anything := func(tenants.Record, map[string]tenants.Plan) error { return nil }
	if _, err := reg.PutTenant(t.Context(), tenants.Record{Spec: tenants.Spec{ID: "acme", Plan: "p"}}, anything, -1); err != nil {
		t.Fatal(err)
	}
	plans := map[string]tenants.Plan{"p": {Limits: []limiter.Rule{{Name: "per_minute", Limit: 5, Window: time.Minute}}}}
	snap, err := tenants.BuildWith(tenants.Options{KeyHeader: "X-API-Key", Unknown: "reject", Max: 2}, plans,
		[]tenants.Spec{{ID: "acme", Plan: "p", Keys: []string{"acme-key"}}},
		&tenants.Registry{Version: 1, Tenants: []tenants.Record{{Spec: tenants.Spec{ID: "acme", Plan: "p"}}}}, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Parts{Tenants: tenants.NewTable(snap), StoreName: "standalone", Limits: limiter.NewMemoryStore(nil),
		Breaker: func() string { return "closed" }, Token: "tok", Config: func() any { return map[string]string{} },
		Registry: reg, File: func() FileView {
			return FileView{Source: tenants.SourceBoth, Plans: plans, Tenants: 1, HasTenant: func(id string) bool { return id == "acme" }}
		}})
	if err != nil {
		t.Fatal(err)
	}
	a.SetReady(true)
	if code, body := apiCall(a, "PUT", "/v1/tenants/newco", `{"plan":"p"}`); code != 201 {
		t.Errorf("PUT /v1/tenants/newco: %d %s; want 201 (acme and newco served, of 2)", code, body)
	}
	if code, body := apiCall(a, "PUT", "/v1/tenants/third", `{"plan":"p"}`); code != 409 {
		t.Errorf("PUT /v1/tenants/third: %d %s; want 409, tenants.max reached", code, body)
	}
}

// TestRegistryDecodeErrorsNameTheField: a body that did not decode was a
// 400 with no errors[] and no path (which rule's window, which rule has the
// unknown field, which limit is a string), where the README promises
// errors: [{"field": "limits[0].window", ...}] for every field at fault (a
// review). The body is refused before the registry is asked, so a registry
// that does not answer does.
func TestRegistryDecodeErrorsNameTheField(t *testing.T) {
	a := newRegistryAdmin(t, registry.New(downClient(t), downClient(t), "review"))
	for _, c := range []struct{ path, body, field string }{
		{"/v1/tenants/t9", `{"plan":"p","routes":[{"path_prefix":"/x","limits":[{"name":"a","limit":1,"window":"1s"},{"name":"b","limit":1,"window":"soon"}]}]}`, "routes[0].limits[1].window"},
		{"/v1/tenants/t9", `{"plan":"p","limits":[{"name":"a","limit":1,"window":"1s"},{"name":"b","limit":"10","window":"1s"}]}`, "limits[1].limit"},
		{"/v1/tenants/t9", `{"plan":"p","limits":[{"name":"a","limit":1,"window":"1s"},{"name":"b","limit":1,"windw":"1s"}]}`, "limits[1].windw"},
		{"/v1/tenants/t9", `{"plan":"p","retiring_keys":[{"key_hash":"sha256:00","expires_at":"tomorrow"}]}`, "retiring_keys[0].expires_at"},
		{"/v1/tenants/t9", `{"plan":"p","retiring_keys":[{"key_hash":"sha256:00","expires_at":{"a":1}}]}`, "retiring_keys[0].expires_at"},
		{"/v1/tenants/t9", `{"plan":"p","retiring_keys":[{"key_hash":"sha256:00","expires_at":5}]}`, "retiring_keys[0].expires_at"},
		{"/v1/plans/zz", `{"limits":[{"name":"a","limit":10,"window":"1s"},{"name":"b","limit":1,"window":"soon"}]}`, "limits[1].window"},
		// A name twice, or in two cases: encoding/json keeps the last.
		{"/v1/tenants/t9", `{"plan":"free","plan":"pro"}`, "plan"},
		{"/v1/tenants/t9", `{"plan":"free","PLAN":"pro"}`, "PLAN"},
		{"/v1/plans/zz", `{"limits":[{"name":"x","limit":5,"limit":500000,"window":"1s"}]}`, "limits[0].limit"},
	} {
		code, body := apiCall(a, "PUT", c.path, c.body)
		var p struct {
			Detail string                   `json:"detail"`
			Errors []struct{ Field string } `json:"errors"`
		}
		_ = json.Unmarshal([]byte(body), &p)
		if code != 400 || len(p.Errors) != 1 || p.Errors[0].Field != c.field || strings.Contains(body, "Go struct") || strings.Contains(body, "plain") || strings.Contains(body, "UnmarshalJSON") {
			t.Errorf("PUT %s %s:\n  %d %s\n  want 400 with errors[0].field %q", c.path, c.body, code, body, c.field)
		}
	}
}

// TestAPlanChangeSparesAStoredTenantsOldChecks: a tenant stored before a
// check was added (here a route whose method and prefix no request has)
// keeps serving, so a change to its plan that breaks nothing of it is
// made: the plan's tenants are re-checked as the snapshot builds them,
// not as a new write (a review).
func TestAPlanChangeSparesAStoredTenantsOldChecks(t *testing.T) {
	c := redistest.Server(t).Client(t)
	reg := registry.New(c, c, "api")
	a := newRegistryAdmin(t, reg)
	if code, body := apiCall(a, "PUT", "/v1/plans/pro", `{"limits":[{"name":"r","limit":10,"window":"1s"}]}`); code != 201 {
		t.Fatalf("PUT plan: %d %s", code, body)
	}
	anything := func(tenants.Record, map[string]tenants.Plan) error { return nil } // the checks of then
	legacy := tenants.Record{Spec: tenants.Spec{ID: "legacy", Plan: "pro", Routes: []tenants.RouteSpec{{Methods: []string{"POST "}, PathPrefix: "v1",
		Limits: []limiter.Rule{{Name: "v1", Limit: 1, Window: time.Second}}}}}}
	if _, err := reg.PutTenant(t.Context(), legacy, anything, -1); err != nil {
		t.Fatal(err)
	}
	if code, body := apiCall(a, "PUT", "/v1/plans/pro", `{"limits":[{"name":"r","limit":20,"window":"1s"}]}`); code != 200 {
		t.Errorf("raising pro's limit with a stored tenant on it: %d %s; want 200", code, body)
	}
	if code, body := apiCall(a, "PUT", "/v1/plans/pro", `{"limits":[{"name":"r","limit":20,"window":"1s"},{"name":"v1","limit":5,"window":"1s"}]}`); code == 200 {
		t.Errorf("a plan rule named as the stored tenant's route rule: %d %s; want it refused, as the snapshot would drop the tenant", code, body)
	}
}
