package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
)

// TestAdminRegistryCommands drives a real gateway's registry (tenants in
// a real Redis) with `l1gw admin tenants|plans|keys`: a plan and a tenant
// put from files and stdin, a key issued and served by the proxy, rotated,
// listed and revoked.
func TestAdminRegistryCommands(t *testing.T) {
	srv := redistest.Server(t)
	upURL := testkit.Serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("up") })
	proxy, admin := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "l1gw.yaml")
	cfg := fmt.Sprintf(`server: {listen: %q, admin_listen: %q, admin_token: s3cret}
redis: {mode: standalone, addrs: [%q]}
tenants: {source: redis, refresh: 1s}
upstreams: {demo: {targets: [%q], health: {path: ""}}}
routes: [{path_prefix: /, upstream: demo}]
`, proxy, admin, srv.Addr(), upURL)
	planFile := filepath.Join(dir, "plan.json")
	for name, body := range map[string]string{file: cfg, planFile: `{"limits":[{"name":"per_minute","limit":50,"window":"1m"}]}`} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	serveFile(t, file, admin)
	env := []string{"L1GW_SERVER__ADMIN_TOKEN=s3cret", "L1GW_SERVER__ADMIN_LISTEN=" + admin}
	adm := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		adminStdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		code := run(append([]string{"admin"}, args...), env, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	defer func() { adminStdin = os.Stdin }()
	must := func(want int, stdin string, args ...string) string {
		t.Helper()
		code, out, errOut := adm(stdin, args...)
		if code != want {
			t.Fatalf("l1gw admin %q: exit %d, %q %q; want %d", args, code, out, errOut, want)
		}
		return out + errOut
	}
	must(0, "", "plans", "put", "gold", planFile)
	must(0, `{"plan":"gold"}`, "tenants", "put", "acme", "-")
	if out := must(0, "", "tenants", "list", "--limit", "10"); !strings.Contains(out, `"id": "acme"`) {
		t.Errorf("tenants list: %s", out)
	}
	if out := must(1, `{"plan":"none"}`, "tenants", "put", "acme", "-"); !strings.Contains(out, "unknown plan") {
		t.Errorf("a tenant on no plan: %s; want the plan named", out)
	}
	must(2, "not json", "tenants", "put", "acme", "-")
	var k1 struct {
		KeyID string `json:"key_id"`
		Key   string `json:"key"`
	}
	if err := json.Unmarshal([]byte(must(0, "", "keys", "issue", "acme")), &k1); err != nil || k1.Key == "" {
		t.Fatalf("keys issue: %v %+v", err, k1)
	}
	serves := func(key string) bool {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + proxy + "/x")
		req.Header.Set("X-API-Key", key)
		return fasthttp.DoTimeout(req, resp, 2*time.Second) == nil && resp.StatusCode() == 200
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if !serves(k1.Key) {
			return fmt.Errorf("the issued key is not served")
		}
		return nil
	})
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if out := must(0, "", "keys", "rotate", "acme", k1.KeyID, "--old-expires-at", later); !strings.Contains(out, `"key"`) {
		t.Errorf("keys rotate: %s", out)
	}
	if out := must(0, "", "keys", "list", "acme"); strings.Count(out, `"key_id"`) != 2 || !strings.Contains(out, later) || strings.Contains(out, k1.Key) {
		t.Errorf("keys list: %s; want two keys, the first expiring at %s, and no key", out, later)
	}
	must(0, "", "keys", "revoke", "acme", k1.KeyID)
	must(1, "", "keys", "revoke", "acme", k1.KeyID)
	must(2, "", "keys", "rotate", "acme", k1.KeyID, "--old-expires-at", "tomorrow")
	must(2, "", "keys", "frob", "acme")
	testkit.Eventually(t, 5*time.Second, func() error {
		if serves(k1.Key) {
			return fmt.Errorf("the revoked key is still served")
		}
		return nil
	})
	must(1, "", "plans", "delete", "gold") // acme is on it
	must(0, "", "tenants", "delete", "acme")
	must(0, "", "plans", "get", "gold")
}
