package admin

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// downStore is a store that does not answer: the API's 503.
type downStore struct{}

func (downStore) Usage(context.Context, string, []limiter.Rule) ([]limiter.RuleUsage, error) {
	return nil, errors.New("down")
}
func (downStore) Reset(context.Context, string, []limiter.Rule) error { return errors.New("down") }

// spec is the part of the OpenAPI document the test reads.
type spec struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Responses map[string]json.RawMessage `json:"responses"`
	} `json:"paths"`
}

// newTestAdmin is an Admin over a memory store (or store), with tenant
// "acme" and a reload that answers result.
func newTestAdmin(t *testing.T, token string, store Limits, result *string) *Admin {
	t.Helper()
	snap, err := tenants.Build(tenants.Options{KeyHeader: "X-API-Key", Unknown: "reject"},
		map[string]tenants.Plan{"p": {Limits: []limiter.Rule{{Name: "per_minute", Limit: 5, Window: time.Minute}}}},
		[]tenants.Spec{{ID: "acme", Plan: "p", Keys: []string{"acme-key"}}}, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Parts{Tenants: tenants.NewTable(snap), StoreName: "memory", Limits: store, Breaker: func() string { return "closed" },
		Token: token, Pprof: true, Config: func() any { return map[string]string{"k": "v"} },
		Reload: func(trigger string) ReloadResult {
			return ReloadResult{Result: *result, Trigger: trigger, At: time.Now(), RestartKeys: []string{"server.listen"}}
		},
		LastReload: func() *ReloadResult { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	a.SetReady(true)
	return a
}

// TestOpenAPI holds the admin API to its OpenAPI document: every route the
// router serves is documented and every documented one served, and each
// operation answers exactly the statuses the document declares, each of
// them produced here.
func TestOpenAPI(t *testing.T) {
	var doc spec
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi: %q; want 3.1.0", doc.OpenAPI)
	}
	result := ReloadOK
	a := newTestAdmin(t, "tok", limiter.NewMemoryStore(nil), &result)
	off := newTestAdmin(t, "", limiter.NewMemoryStore(nil), &result)
	down := newTestAdmin(t, "tok", downStore{}, &result)

	// The router's routes and the document's operations are the same set.
	var served []string
	for method, paths := range a.router.List() {
		for _, p := range paths {
			served = append(served, method+" "+strings.ReplaceAll(p, "{profile:*}", "{profile}"))
		}
	}
	var documented []string
	for p, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+p)
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	if !slices.Equal(served, documented) {
		t.Fatalf("routes served %q; documented %q", served, documented)
	}

	seen := map[string]map[string]bool{} // "METHOD /template" → statuses
	do := func(ad *Admin, op, path, token, body string) string {
		t.Helper()
		method, _, _ := strings.Cut(op, " ")
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI("http://admin.test" + path)
		if token != "" {
			ctx.Request.Header.Set("Authorization", "Bearer "+token)
		}
		ctx.Request.SetBodyString(body)
		ad.Handler()(&ctx)
		if seen[op] == nil {
			seen[op] = map[string]bool{}
		}
		seen[op][strconv.Itoa(ctx.Response.StatusCode())] = true
		return string(ctx.Response.Body())
	}
	secured := map[string]string{ // operation → a path for it
		"GET /v1/openapi.json":        "/v1/openapi.json",
		"GET /v1/config":              "/v1/config",
		"POST /v1/reload":             "/v1/reload",
		"POST /v1/simulate":           "/v1/simulate",
		"GET /v1/tenants/{id}/usage":  "/v1/tenants/acme/usage",
		"POST /v1/tenants/{id}/reset": "/v1/tenants/acme/reset",
		"GET /debug/pprof/{profile}":  "/debug/pprof/cmdline",
		"GET /debug/pprof/":           "/debug/pprof/",

		"GET /v1/tenants":                       "/v1/tenants",
		"GET /v1/tenants/{id}":                  "/v1/tenants/t1",
		"PUT /v1/tenants/{id}":                  "/v1/tenants/t1",
		"DELETE /v1/tenants/{id}":               "/v1/tenants/t1",
		"GET /v1/plans":                         "/v1/plans",
		"GET /v1/plans/{name}":                  "/v1/plans/gold",
		"PUT /v1/plans/{name}":                  "/v1/plans/gold",
		"DELETE /v1/plans/{name}":               "/v1/plans/gold",
		"POST /v1/tenants/{id}/keys":            "/v1/tenants/t1/keys",
		"GET /v1/tenants/{id}/keys":             "/v1/tenants/t1/keys",
		"DELETE /v1/tenants/{id}/keys/{key_id}": "/v1/tenants/t1/keys/k0",
	}
	for _, op := range slices.Sorted(maps.Keys(secured)) {
		do(a, op, secured[op], "", "")      // 401
		do(a, op, secured[op], "wrong", "") // 401
		do(off, op, secured[op], "x", "")   // 403
	}
	sim := `{"key":"acme-key","method":"GET","path":"/x"}`
	do(a, "GET /healthz", "/healthz", "", "")
	do(a, "GET /metrics", "/metrics", "", "")
	do(a, "GET /readyz", "/readyz", "", "")
	a.SetReady(false)
	do(a, "GET /readyz", "/readyz", "", "")
	a.SetReady(true)
	do(a, "GET /v1/openapi.json", "/v1/openapi.json", "tok", "")
	do(a, "GET /v1/config", "/v1/config", "tok", "")
	// New walked the first config; a reload's may hold what encoding/json
	// refuses (a NaN here): a 500 problem, not a panic or plain text.
	cfg := a.curConfig
	a.curConfig = func() any { return map[string]float64{"x": math.NaN()} }
	if body := do(a, "GET /v1/config", "/v1/config", "tok", ""); !strings.Contains(body, `"status":500`) || !strings.Contains(body, "NaN") {
		t.Errorf("GET /v1/config of a NaN: %s; want a 500 problem naming it", body)
	}
	a.curConfig = cfg
	do(a, "GET /debug/pprof/{profile}", "/debug/pprof/cmdline", "tok", "")
	if body := do(a, "GET /debug/pprof/", "/debug/pprof/", "tok", ""); !strings.Contains(body, "goroutine") {
		t.Errorf("GET /debug/pprof/: %.200q; want the index of profiles", body)
	}
	for _, r := range []string{ReloadOK, ReloadUnchanged, ReloadInvalid, ReloadRestartRequired} {
		result = r
		do(a, "POST /v1/reload", "/v1/reload", "tok", "")
	}
	do(a, "POST /v1/simulate", "/v1/simulate", "tok", sim)
	do(a, "POST /v1/simulate", "/v1/simulate", "tok", "not json")
	do(a, "POST /v1/simulate", "/v1/simulate", "tok", `{"tenant":"nope","method":"GET","path":"/x"}`)
	do(down, "POST /v1/simulate", "/v1/simulate", "tok", sim)
	for _, op := range []string{"GET /v1/tenants/{id}/usage", "POST /v1/tenants/{id}/reset"} {
		do(a, op, secured[op], "tok", "")
		do(a, op, strings.Replace(secured[op], "acme", "nope", 1), "tok", "")
		do(down, op, secured[op], "tok", "")
	}

	exerciseRegistry(t, do, secured, a)

	for _, op := range documented {
		method, path, _ := strings.Cut(op, " ")
		declared := slices.Sorted(maps.Keys(doc.Paths[path][strings.ToLower(method)].Responses))
		got := slices.Sorted(maps.Keys(seen[op]))
		if !slices.Equal(declared, got) {
			t.Errorf("%s: answered %v; the document declares %v", op, got, declared)
		}
	}
	if len(seen) != len(documented) {
		t.Errorf("exercised %d operations; the document has %d", len(seen), len(documented))
	}
}
