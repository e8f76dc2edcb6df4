package admin

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/limiter"
)

// TestAuditLines: every write through the API logs who (the token's ID,
// never the token), what and on which tenant; reads log nothing.
func TestAuditLines(t *testing.T) {
	var buf bytes.Buffer
	result := ReloadOK
	a := newTestAdmin(t, "tok-secret", limiter.NewMemoryStore(nil), &result)
	a.log = slog.New(slog.NewJSONHandler(&buf, nil))
	call := func(method, path string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI("http://admin.test" + path)
		ctx.Request.Header.Set("Authorization", "Bearer tok-secret")
		a.Handler()(&ctx)
	}
	call("GET", "/v1/tenants/acme/usage")
	if buf.Len() != 0 {
		t.Errorf("a read logged %q; want nothing", buf.String())
	}
	call("POST", "/v1/tenants/acme/reset")
	call("POST", "/v1/reload")
	call("POST", "/v1/tenants/nope/reset")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{`"action":"reset","tenant":"acme","status":204`, `"action":"reload","tenant":"","status":200`, `"action":"reset","tenant":"nope","status":404`}
	if len(lines) != len(want) {
		t.Fatalf("audit lines %q; want %d", lines, len(want))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], `"msg":"audit","token_id":"`+tokenID("tok-secret")+`"`) || !strings.Contains(lines[i], w) {
			t.Errorf("audit line %q; want the token's ID and %s", lines[i], w)
		}
	}
	if strings.Contains(buf.String(), "tok-secret") {
		t.Errorf("the token is in the audit log: %s", buf.String())
	}
}

// TestAuditNamesTheTokenSent: a write during which the token rotates (a
// changed server.admin_token_file) is logged under the token its caller sent,
// not the one in force once it is done.
func TestAuditNamesTheTokenSent(t *testing.T) {
	var buf bytes.Buffer
	result := ReloadOK
	a := newTestAdmin(t, "tok-old", limiter.NewMemoryStore(nil), &result)
	a.log = slog.New(slog.NewJSONHandler(&buf, nil))
	reload := a.reloader
	a.reloader = func(trigger string) ReloadResult {
		a.SetToken("tok-new")
		return reload(trigger)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("http://admin.test/v1/reload")
	ctx.Request.Header.Set("Authorization", "Bearer tok-old")
	a.Handler()(&ctx)
	if ctx.Response.StatusCode() != fasthttp.StatusOK {
		t.Fatalf("reload: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if !strings.Contains(buf.String(), `"token_id":"`+tokenID("tok-old")+`"`) {
		t.Errorf("audit %s; want the ID of tok-old, which the caller sent", buf.String())
	}
}
