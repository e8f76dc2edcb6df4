package admin

import (
	"encoding/json"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/l1gw/l1gw/limiter"
)

// TestHeadIsGetWithoutItsBody: every GET of the admin API answers HEAD
// with the GET's status and fields and no body, through a real fasthttp
// server; a 405's Allow names HEAD beside GET and not OPTIONS, which is
// not served, and a POST-only route refuses HEAD.
func TestHeadIsGetWithoutItsBody(t *testing.T) {
	result := ReloadOK
	a := newTestAdmin(t, "tok", limiter.NewMemoryStore(nil), &result)
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: a.Handler()}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { srv.Shutdown() })
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}

	do := func(method, path, token string) (status int, allow string, length int, body string) {
		t.Helper()
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod(method)
		req.SetRequestURI("http://admin.test" + path)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp.SkipBody = method == fasthttp.MethodHead
		if err := c.Do(req, resp); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp.StatusCode(), string(resp.Header.Peek("Allow")), resp.Header.ContentLength(), string(resp.Body())
	}

	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/metrics", "", 200},
		{"/v1/config", "tok", 200},
		{"/v1/tenants/acme/usage", "tok", 200},
		{"/v1/tenants/nobody/usage", "tok", 404},
		{"/v1/config", "", 401},
	} {
		gs, _, glen, gbody := do(fasthttp.MethodGet, tc.path, tc.token)
		hs, _, hlen, hbody := do(fasthttp.MethodHead, tc.path, tc.token)
		if gs != tc.status || hs != gs {
			t.Errorf("%s: GET %d, HEAD %d; want %d for both", tc.path, gs, hs, tc.status)
		}
		if hbody != "" {
			t.Errorf("HEAD %s: a body of %d bytes", tc.path, len(hbody))
		}
		if tc.path != "/metrics" && (hlen != glen || glen != len(gbody)) { // metrics change between the two
			t.Errorf("%s: Content-Length %d for HEAD, %d for GET (body %d)", tc.path, hlen, glen, len(gbody))
		}
	}

	if s, allow, _, _ := do(fasthttp.MethodPost, "/healthz", ""); s != 405 || allow != "GET, HEAD" {
		t.Errorf("POST /healthz: %d, Allow %q; want 405, \"GET, HEAD\"", s, allow)
	}
	if s, allow, _, _ := do(fasthttp.MethodPost, "/v1/tenants/acme", "tok"); s != 405 || allow != "DELETE, GET, HEAD, PUT" {
		t.Errorf("POST /v1/tenants/acme: %d, Allow %q; want 405, \"DELETE, GET, HEAD, PUT\"", s, allow)
	}
	if s, allow, _, _ := do(fasthttp.MethodOptions, "/healthz", ""); s != 405 || allow != "GET, HEAD" {
		t.Errorf("OPTIONS /healthz: %d, Allow %q; want 405, \"GET, HEAD\"", s, allow)
	}
	if s, allow, _, _ := do(fasthttp.MethodHead, "/v1/reload", "tok"); s != 405 || allow != "POST" {
		t.Errorf("HEAD /v1/reload: %d, Allow %q; want 405, \"POST\"", s, allow)
	}
	// The profiler's GETs do their work (a profile, a GC) whatever the
	// method: not for HEAD.
	if s, allow, _, _ := do(fasthttp.MethodHead, "/debug/pprof/heap", "tok"); s != 405 || allow != "GET" {
		t.Errorf("HEAD /debug/pprof/heap: %d, Allow %q; want 405, \"GET\"", s, allow)
	}
}

// TestHeadSurvivesAPanic: a HEAD whose handler panics is still a HEAD
// when the recoverer answers it, so fasthttp still leaves out the body.
func TestHeadSurvivesAPanic(t *testing.T) {
	result := ReloadOK
	a := newTestAdmin(t, "tok", limiter.NewMemoryStore(nil), &result)
	a.router.GET("/panics", func(*fasthttp.RequestCtx) { panic("boom") })
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodHead)
	ctx.Request.SetRequestURI("http://admin.test/panics")
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the handler did not panic")
			}
		}()
		a.Handler()(&ctx)
	}()
	if !ctx.IsHead() {
		t.Errorf("after the panic the method is %q; want HEAD", ctx.Method())
	}
}

// TestRoutingErrorsAreProblems: a path the admin API does not have, and a
// method a path does not take, are answered as its other errors are, in
// problem+json, the 405 with its Allow.
func TestRoutingErrorsAreProblems(t *testing.T) {
	result := ReloadOK
	a := newTestAdmin(t, "tok", limiter.NewMemoryStore(nil), &result)
	for _, tc := range []struct {
		method, path string
		status       int
		detail       string
	}{
		{fasthttp.MethodGet, "/v1/nothing", 404, "the admin API has no such path: GET /v1/openapi.json lists them"},
		{fasthttp.MethodPost, "/healthz", 405, "this path takes GET, HEAD"},
		{fasthttp.MethodPatch, "/v1/tenants/acme", 405, "this path takes DELETE, GET, HEAD, PUT"},
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(tc.method)
		ctx.Request.SetRequestURI(tc.path)
		a.Handler()(&ctx)
		var p problem
		if err := json.Unmarshal(ctx.Response.Body(), &p); err != nil || ctx.Response.StatusCode() != tc.status ||
			string(ctx.Response.Header.ContentType()) != "application/problem+json" || p.Status != tc.status || p.Detail != tc.detail {
			t.Errorf("%s %s: %d %s %q (%v); want %d application/problem+json with detail %q", tc.method, tc.path,
				ctx.Response.StatusCode(), ctx.Response.Header.ContentType(), ctx.Response.Body(), err, tc.status, tc.detail)
		}
	}
}

// TestReadyzNamesRegistryProblemsToTheTokenOnly: /readyz needs no token,
// so the registry's problems are counted to anyone and named (tenant ids)
// only to a caller with the admin token.
func TestReadyzNamesRegistryProblemsToTheTokenOnly(t *testing.T) {
	result := ReloadOK
	a := newTestAdmin(t, "tok", limiter.NewMemoryStore(nil), &result)
	a.regStatus = func() *RegistryStatus {
		return &RegistryStatus{Conflicts: 1, Problems: []ProblemEntry{{Kind: "conflict", Object: "tenant", Name: "acme-secret-customer"}}}
	}
	for _, token := range []string{"", "wrong", "tok"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/readyz")
		if token != "" {
			ctx.Request.Header.Set("Authorization", "Bearer "+token)
		}
		a.Handler()(&ctx)
		var r Readiness
		if err := json.Unmarshal(ctx.Response.Body(), &r); err != nil || r.Registry == nil {
			t.Fatalf("token %q: %v, %s", token, err, ctx.Response.Body())
		}
		if named := len(r.Registry.Problems) > 0; named != (token == "tok") || r.Registry.Conflicts != 1 {
			t.Errorf("token %q: %s; want the conflict counted, and named only with the token", token, ctx.Response.Body())
		}
		if v := string(ctx.Response.Header.Peek("Vary")); v != "Authorization" {
			t.Errorf("token %q: Vary %q; want Authorization, as the body depends on it", token, v)
		}
	}
}
