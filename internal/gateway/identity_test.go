package gateway

import (
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// newIdentityGateway is a Gateway over two tenants, "bulk" (key
// "bulk-key") and "acme" ("acme-key"), that admits every request and
// forwards it to upstreamURL, with the key options o (the key header is
// X-API-Key).
func newIdentityGateway(tb testing.TB, upstreamURL string, o tenants.Options) *Gateway {
	tb.Helper()
	o.KeyHeader, o.Unknown, o.Source = "X-API-Key", tenants.UnknownReject, tenants.SourceConfig
	snap, err := tenants.Build(o, map[string]tenants.Plan{"p": {Limits: fixtureRules}},
		[]tenants.Spec{{ID: "bulk", Plan: "p", Keys: []string{"bulk-key"}}, {ID: "acme", Plan: "p", Keys: []string{"acme-key"}}},
		func(string) bool { return true })
	if err != nil {
		tb.Fatal(err)
	}
	proxy, err := upstream.New(map[string]upstream.Spec{"up": {Targets: []string{upstreamURL},
		Timeout: 5 * time.Second, DialTimeout: time.Second, IdleConnTimeout: time.Minute, MaxConnsPerTarget: 16}},
		[]upstream.RouteSpec{{Upstream: "up"}}, quiet)
	if err != nil {
		tb.Fatal(err)
	}
	admit := fixedVerdict{decided(degrade.Verdict{Allowed: true}, 99, time.Minute, 0)}
	return New(Parts{Tenants: tenants.NewTable(snap), Limiter: admit, Proxy: proxy, IDs: upstream.NewIDs("test"), Log: quiet})
}

// identityRequest serves requests for uri with headers ("Name: value")
// to a handler over one reused RequestCtx, as testkit.Handler does.
type identityRequest struct {
	tmpl fasthttp.Request
	ctx  fasthttp.RequestCtx
}

func newIdentityRequest(uri string, headers ...string) *identityRequest {
	r := &identityRequest{}
	r.tmpl.SetRequestURI("http://gw.test" + uri)
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		r.tmpl.Header.Add(name, value)
	}
	r.ctx.Init(&r.tmpl, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}, nil)
	return r
}

func (r *identityRequest) serve(h fasthttp.RequestHandler) int {
	r.tmpl.CopyTo(&r.ctx.Request)
	r.ctx.Response.Reset()
	h(&r.ctx)
	return r.ctx.Response.StatusCode()
}

func basicAuth(user, pass string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestKeyPlaces: the key is read from the key header, the key query
// parameter, Bearer or Basic credentials; two different keys, or the
// parameter twice, are a 400; malformed Basic a 401. With hide_key the
// upstream gets neither the parameter (the rest of the query as sent) nor
// an Authorization that held the key.
func TestKeyPlaces(t *testing.T) {
	const none = "<none>"
	cases := []struct {
		name    string
		uri     string
		headers []string
		status  int
		tenant  string // the tenant the upstream is told
		fwdURI  string // the request URI the upstream gets
		fwdAuth string // the Authorization the upstream gets
		detail  string // in the problem, when refused
	}{
		{"query", "/p?a=%41&user_key=bulk-key&b=%2F+x&c", nil, 200, "bulk", "/p?a=%41&b=%2F+x&c", none, ""},
		{"query alone", "/p?user_key=bulk-key", nil, 200, "bulk", "/p", none, ""},
		{"query, encoded name and value", "/p?user%5Fkey=bulk%2Dkey&z=1", nil, 200, "bulk", "/p?z=1", none, ""},
		{"Basic password", "/p?x=1", []string{basicAuth("api", "bulk-key")}, 200, "bulk", "/p?x=1", none, ""},
		{"Basic user, no password", "/p", []string{basicAuth("bulk-key", "")}, 200, "bulk", "/p", none, ""},
		{"Bearer", "/p", []string{"Authorization: Bearer acme-key"}, 200, "acme", "/p", none, ""},
		{"same key in header and query", "/p?user_key=bulk-key", []string{"X-API-Key: bulk-key"}, 200, "bulk", "/p", none, ""},
		{"same key in query and Basic", "/p?user_key=acme-key", []string{basicAuth("", "acme-key")}, 200, "acme", "/p", none, ""},
		{"upstream's Basic beside the header", "/p", []string{"X-API-Key: bulk-key", basicAuth("user", "pass")}, 200, "bulk", "/p", "Basic dXNlcjpwYXNz", ""},
		{"upstream's Bearer beside the query", "/p?user_key=bulk-key", []string{"Authorization: Bearer upstream-token"}, 200, "bulk", "/p", "Bearer upstream-token", ""},
		{"header and query differ", "/p?user_key=acme-key", []string{"X-API-Key: bulk-key"}, 400, "", "", "", "two different API keys"},
		{"query and Basic differ", "/p?user_key=bulk-key", []string{basicAuth("api", "acme-key")}, 400, "", "", "", "two different API keys"},
		{"header and Bearer differ", "/p", []string{"X-API-Key: bulk-key", "Authorization: Bearer acme-key"}, 400, "", "", "", "two different API keys"},
		{"query twice, the same key", "/p?user_key=bulk-key&user_key=bulk-key", nil, 400, "", "", "", "more than once"},
		{"query twice, one encoded", "/p?user_key=bulk-key&user%5fkey=acme-key", nil, 400, "", "", "", "more than once"},
		{"query twice, one empty", "/p?user_key=&user_key=bulk-key", nil, 400, "", "", "", "more than once"},
		{"query too long", "/p?user_key=" + strings.Repeat("%41", tenants.KeyBufLen+1), nil, 401, "", "", "", "longer than 1024 bytes"},
		{"Basic, bad base64", "/p", []string{"Authorization: Basic !!!!"}, 401, "", "", "", "base64 of user-id:password"},
		{"Basic, no colon", "/p", []string{"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("bulk-key"))}, 401, "", "", "", "base64 of user-id:password"},
		{"Basic, malformed beside the header", "/p", []string{"X-API-Key: bulk-key", "Authorization: Basic x"}, 401, "", "", "", "base64 of user-id:password"},
		{"unknown key in the query", "/p?user_key=nope", nil, 401, "", "", "", "not known"},
		{"empty parameter, no key", "/p?user_key=", nil, 401, "", "", "", "user_key query parameter"},
	}
	up := testkit.StartUpstream(t, nil)
	gw := newIdentityGateway(t, up.URL, tenants.Options{KeyQuery: "user_key", KeyBasicAuth: true, HideKey: true})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := up.Count()
			r := newIdentityRequest(tc.uri, tc.headers...)
			if got := r.serve(gw.Serve); got != tc.status {
				t.Fatalf("got %d (%s); want %d", got, r.ctx.Response.Body(), tc.status)
			}
			if tc.status != 200 {
				if up.Count() != before {
					t.Fatal("a refused request reached the upstream")
				}
				if body := string(r.ctx.Response.Body()); !strings.Contains(body, tc.detail) {
					t.Fatalf("problem %s; want it to say %q", body, tc.detail)
				}
				wantChallenge := tc.status == 401
				if got := string(r.ctx.Response.Header.Peek("WWW-Authenticate")); (got == `Bearer realm="l1gw", Basic realm="l1gw"`) != wantChallenge {
					t.Fatalf("WWW-Authenticate %q on a %d", got, tc.status)
				}
				return
			}
			fwd := up.Last()
			if got := string(fwd.Header.Peek("X-L1gw-Tenant")); got != tc.tenant {
				t.Errorf("tenant %q; want %q", got, tc.tenant)
			}
			if got := string(fwd.Header.RequestURI()); got != tc.fwdURI {
				t.Errorf("upstream got %q; want %q", got, tc.fwdURI)
			}
			auth := string(fwd.Header.Peek("Authorization"))
			if auth == "" {
				auth = none
			}
			if auth != tc.fwdAuth {
				t.Errorf("upstream Authorization %q; want %q", auth, tc.fwdAuth)
			}
			if k := fwd.Header.Peek("X-API-Key"); len(k) > 0 {
				t.Errorf("upstream X-API-Key %q; want none", k)
			}
		})
	}
}

// TestKeyPlacesOff: with the defaults (no key_query, no key_basic_auth)
// the query and Basic credentials are the upstream's and pass; with
// hide_key off, a key read from the query passes too.
func TestKeyPlacesOff(t *testing.T) {
	up := testkit.StartUpstream(t, nil)
	off := newIdentityGateway(t, up.URL, tenants.Options{HideKey: true})
	r := newIdentityRequest("/p?user_key=acme-key", "X-API-Key: bulk-key", basicAuth("api", "acme-key"))
	if got := r.serve(off.Serve); got != 200 {
		t.Fatalf("got %d (%s); want 200", got, r.ctx.Response.Body())
	}
	if got, want := string(up.Last().Header.RequestURI()), "/p?user_key=acme-key"; got != want {
		t.Errorf("upstream got %q; want %q", got, want)
	}
	if got := string(up.Last().Header.Peek("Authorization")); !strings.HasPrefix(got, "Basic ") {
		t.Errorf("upstream Authorization %q; want the client's Basic credentials", got)
	}
	r = newIdentityRequest("/p", basicAuth("api", "bulk-key"))
	if got := r.serve(off.Serve); got != 401 || !strings.Contains(string(r.ctx.Response.Body()), "X-API-Key header or as Authorization: Bearer") {
		t.Errorf("Basic without key_basic_auth: got %d %s; want 401 naming the header and Bearer", got, r.ctx.Response.Body())
	}
	if got := string(r.ctx.Response.Header.Peek("WWW-Authenticate")); got != `Bearer realm="l1gw"` {
		t.Errorf("WWW-Authenticate %q; want Bearer alone", got)
	}

	shown := newIdentityGateway(t, up.URL, tenants.Options{KeyQuery: "user_key", KeyBasicAuth: true})
	r = newIdentityRequest("/p?user_key=bulk-key&a=1", basicAuth("", "bulk-key"))
	if got := r.serve(shown.Serve); got != 200 {
		t.Fatalf("got %d (%s); want 200", got, r.ctx.Response.Body())
	}
	if got, want := string(up.Last().Header.RequestURI()), "/p?user_key=bulk-key&a=1"; got != want {
		t.Errorf("hide_key off: upstream got %q; want %q", got, want)
	}
	if got := string(up.Last().Header.Peek("Authorization")); got == "" {
		t.Error("hide_key off: Authorization was removed")
	}
}

// FuzzKeyPlaces: whatever the query and Authorization, the gateway
// answers 200, 400 or 401, never panics, and with hide_key no key of a
// tenant's reaches the upstream in the key parameter or Authorization.
func FuzzKeyPlaces(f *testing.F) {
	for _, s := range [][2]string{
		{"user_key=bulk-key", ""}, {"a=1&user_key=bulk-key&user_key", ""}, {"user%5Fkey=acme-key", "Bearer acme-key"},
		{"x=%", "Basic YXBpOmJ1bGsta2V5"}, {"user_key=bulk-key", "basic Og=="}, {"", "Basic YnVsay1rZXk6"}, {"&&", "Bearer bulk-key"},
		// 4 KB of credentials that hold no key, forwarded: the test's
		// upstream once refused them with 431 (make test, a fuzz run).
		{"user_key=bulk-key", "b" + strings.Repeat("5", 4000)},
		// A key in Authorization behind more whitespace than the one
		// space fasthttp trims: the gateway took it for another scheme
		// and forwarded it; the upstream, trimming it all, read the key
		// (make test, a fuzz run).
		{"user%5Fkey=acme-key", " BeArer acme-key"}, {"user_key=bulk-key", "  Basic YnVsay1rZXk6"},
		// A key as a whitespace split's second word, or its last: the
		// gateway read the token "acme-key junk" (a review).
		{"user_key=bulk-key", "Bearer acme-key junk"}, {"user_key=bulk-key", "Token x y acme-key"},
	} {
		f.Add(s[0], s[1])
	}
	up := testkit.StartUpstream(f, nil)
	gw := newIdentityGateway(f, up.URL, tenants.Options{KeyQuery: "user_key", KeyBasicAuth: true, HideKey: true})
	f.Fuzz(func(t *testing.T, query, auth string) {
		if strings.ContainsAny(query, " #\x7f") || strings.ContainsFunc(query+auth, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			t.Skip("not a request line or header value a client can send")
		}
		var headers []string
		if auth != "" {
			headers = append(headers, "Authorization: "+auth)
		}
		r := newIdentityRequest("/f?"+query, headers...)
		switch status := r.serve(gw.Serve); status {
		case 400, 401:
			return
		case 200:
		default:
			t.Fatalf("query %q, Authorization %q: got %d (%s); want 200, 400 or 401", query, auth, status, r.ctx.Response.Body())
		}
		fwd := up.Last()
		var buf [tenants.KeyBufLen]byte
		if _, n, _ := tenants.QueryKey(buf[:], fwd.URI().QueryString(), "user_key"); n != 0 {
			t.Fatalf("query %q: the upstream got the key parameter in %q", query, fwd.URI().QueryString())
		}
		fwdAuth := fwd.Header.Peek("Authorization")
		key := tenants.KeyFrom(nil, fwdAuth)
		if key == nil {
			key, _, _ = tenants.BasicKey(buf[:], fwdAuth)
		}
		if k := string(key); k == "bulk-key" || k == "acme-key" {
			t.Fatalf("Authorization %q: the upstream got the key %q", auth, k)
		}
		// As an upstream splitting on whitespace reads it: the whole
		// value, its first words or its last (the gateway looks at four).
		words := strings.Fields(string(fwdAuth))
		for i, w := range append(words, strings.TrimSpace(string(fwdAuth))) {
			if (i < 4 || i >= len(words)-1) && (w == "bulk-key" || w == "acme-key") {
				t.Fatalf("Authorization %q: the upstream got %q, where a whitespace split reads the key %q", auth, fwdAuth, w)
			}
		}
	})
}

// TestKeyHeaderWithUnderscoresIsRefused: X_Api_Key is the key header to
// an upstream that reads headers as CGI does (HTTP_X_API_KEY); beside the
// real one it could carry another tenant's key past the limits, so a
// request carrying it is a 400 and never forwarded. Other underscore
// names pass.
func TestKeyHeaderWithUnderscoresIsRefused(t *testing.T) {
	up := testkit.StartUpstream(t, nil)
	gw := newIdentityGateway(t, up.URL, tenants.Options{HideKey: true})
	for _, spelling := range []string{"X_Api_Key", "X_API_KEY", "x_api_key", "X-API_Key", "X_API-Key", "x-api_key"} {
		r := newIdentityRequest("/p", "X-API-Key: bulk-key", spelling+": acme-key")
		if got := r.serve(gw.Serve); got != 400 || !strings.Contains(string(r.ctx.Response.Body()), "send the key in X-API-Key only") {
			t.Errorf("X-API-Key and %s: got %d %s; want 400 naming the header", spelling, got, r.ctx.Response.Body())
		}
	}
	if n := up.Count(); n != 0 {
		t.Fatalf("the upstream got %d requests; want none", n)
	}
	r := newIdentityRequest("/p", "X-API-Key: bulk-key", "X_Other: 1")
	if got := r.serve(gw.Serve); got != 200 {
		t.Fatalf("X-API-Key and X_Other: got %d (%s); want 200", got, r.ctx.Response.Body())
	}
}

// TestKeyUnderAnyScheme: an upstream that splits Authorization on any
// whitespace reads a key after a tab, after a scheme the gateway does not
// know, or alone; the gateway reads the first as Bearer (or Basic) and
// refuses the others with a 400, so no tenant's key passes it unread.
// Credentials of other schemes that hold no key pass as before.
func TestKeyUnderAnyScheme(t *testing.T) {
	up := testkit.StartUpstream(t, nil)
	gw := newIdentityGateway(t, up.URL, tenants.Options{KeyBasicAuth: true, HideKey: true})
	digest := `Digest username="acme-key", realm="x"`
	for _, tc := range []struct {
		headers   []string
		want      int
		forwarded string // the upstream's Authorization, for a 200
	}{
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer\tacme-key"}, 400, ""},                        // two keys
		{[]string{"X-API-Key: bulk-key", "Authorization: Basic\t" + basicCreds("api", "acme-key")}, 400, ""}, // two keys
		{[]string{"Authorization: Bearer\tbulk-key"}, 200, ""},                                               // bulk's key, hidden
		{[]string{"X-API-Key: bulk-key", "Authorization: Token acme-key"}, 400, ""},                          // a key under another scheme
		{[]string{"Authorization: Token\t acme-key "}, 400, ""},                                              // alone too
		{[]string{"Authorization: acme-key"}, 400, ""},                                                       // no scheme at all
		// A whitespace split's second word, or its last.
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer acme-key junk"}, 400, ""},
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer acme-key\tx"}, 400, ""},
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer bulk-key x"}, 400, ""}, // hide_key would leave it
		{[]string{"Authorization: Bearer acme-key junk"}, 400, ""},
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer upstream secret"}, 400, ""}, // no token has white space
		{[]string{"X-API-Key: bulk-key", "Authorization: Token acme-key junk"}, 400, ""},
		{[]string{"X-API-Key: bulk-key", "Authorization: Token a b c d e f acme-key"}, 400, ""},
		{[]string{"X-API-Key: bulk-key", "Authorization: Token upstream secret"}, 200, "Token upstream secret"},
		{[]string{"X-API-Key: bulk-key", "Authorization: Token upstream-secret"}, 200, "Token upstream-secret"},
		{[]string{"X-API-Key: bulk-key", "Authorization: " + digest}, 200, digest}, // no whitespace-split key
		// Where Laravel (after the last "Bearer ", up to a ',') and Rails
		// (the first of the parameters split on , ; and tab, without
		// token= and quotes) read a key.
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer acme-key,x"}, 400, ""},
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer acme-key;x"}, 400, ""},
		{[]string{"X-API-Key: bulk-key", `Authorization: Bearer "acme-key"`}, 400, ""},
		{[]string{"X-API-Key: bulk-key", `Authorization: Bearer token="acme-key"`}, 400, ""},
		{[]string{"X-API-Key: bulk-key", `Authorization: Token token="acme-key"`}, 400, ""},
		{[]string{"X-API-Key: bulk-key", "Authorization: X bearer acme-key,y"}, 400, ""},
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer bulk-key,x"}, 400, ""}, // hide_key would leave it
		{[]string{"Authorization: X bearer acme-key,y"}, 400, ""},
		{[]string{`Authorization: Token token="acme-key"`}, 400, ""},
		{[]string{"Authorization: Bearer acme-key,x"}, 400, ""},
		{[]string{"X-API-Key: bulk-key", `Authorization: Token token="upstream-secret"`}, 200, `Token token="upstream-secret"`},
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer upstream-secret,x"}, 200, "Bearer upstream-secret,x"},
		// Basic with a tenant's key for user-id: the password is the key
		// here, the user-id at an upstream that takes it from there.
		{[]string{"X-API-Key: bulk-key", "Authorization: Basic " + basicCreds("acme-key", "x")}, 400, ""},
		{[]string{"Authorization: Basic " + basicCreds("acme-key", "bulk-key")}, 400, ""},
		{[]string{"Authorization: Basic " + basicCreds("bulk-key", "bulk-key")}, 200, ""}, // one key: bulk's, hidden
		// NBSP and NEL split a value in Python and JavaScript.
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer\xa0acme-key"}, 400, ""},
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer\x85acme-key"}, 400, ""},
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer acme-key\xa0"}, 400, ""},
		{[]string{"X-API-Key: bulk-key", "Authorization: Bearer\u00a0acme-key"}, 400, ""},
		{[]string{"X-API-Key: acme-key\xa0"}, 400, ""}, // acme's key to an upstream that strips it
	} {
		r := newIdentityRequest("/p", tc.headers...)
		if got := r.serve(gw.Serve); got != tc.want {
			t.Errorf("%q: got %d (%s); want %d", tc.headers, got, r.ctx.Response.Body(), tc.want)
			continue
		}
		if tc.want != 200 {
			continue
		}
		if got := string(up.Last().Header.Peek("Authorization")); got != tc.forwarded {
			t.Errorf("%q: the upstream got Authorization %q; want %q", tc.headers, got, tc.forwarded)
		}
	}
}

// basicCreds is base64 of user:pass.
func basicCreds(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// TestDecodedKeyIsClearedAfterTheRequest: a key decoded from Basic
// credentials or the query is not left in the admission's scratch, which
// is reused; one read from a header never touches it.
func TestDecodedKeyIsClearedAfterTheRequest(t *testing.T) {
	g := newIdentityGateway(t, "http://127.0.0.1:1", tenants.Options{KeyBasicAuth: true, KeyQuery: "api_key"})
	for _, tc := range []struct{ uri, header string }{
		{"/v?api_key=bulk%2Dkey", ""},
		{"/v", basicAuth("", "bulk-key")},
	} {
		r := newIdentityRequest(tc.uri)
		if tc.header != "" {
			r = newIdentityRequest(tc.uri, tc.header)
		}
		r.tmpl.CopyTo(&r.ctx.Request)
		var a admission
		if !g.admit(&r.ctx, &a) {
			t.Fatalf("%s %s: refused with %d", tc.uri, tc.header, r.ctx.Response.StatusCode())
		}
		if !strings.Contains(string(a.keyBuf[:]), "bulk-key") {
			t.Fatalf("%s %s: the key was not decoded into the scratch; the test tests nothing", tc.uri, tc.header)
		}
		a.reset()
		if strings.Contains(string(a.keyBuf[:]), "bulk-key") {
			t.Errorf("%s %s: the decoded key is still in the admission after reset", tc.uri, tc.header)
		}
	}
}

// TestMethodOverridePastAMethodRoute: a method override (X-HTTP-Method-
// Override and kin, or _method in the query) naming a method whose rules
// on the path differ from the request's is a 400, never forwarded: an
// upstream honouring it would run a DELETE counted as a POST. Where the
// rules are the same, or the tenant has no route by method, it passes.
func TestMethodOverridePastAMethodRoute(t *testing.T) {
	up := testkit.StartUpstream(t, nil)
	o := tenants.Options{KeyHeader: "X-API-Key", Unknown: tenants.UnknownReject, Source: tenants.SourceConfig}
	del := []limiter.Rule{{Name: "deletes", Limit: 1, Window: time.Minute}}
	writes := []limiter.Rule{{Name: "writes", Limit: 5, Window: time.Minute}}
	snap, err := tenants.Build(o, map[string]tenants.Plan{"p": {Limits: fixtureRules}},
		[]tenants.Spec{{ID: "bulk", Plan: "p", Keys: []string{"bulk-key"},
			Routes: []tenants.RouteSpec{{Methods: []string{"DELETE"}, PathPrefix: "/v1/items", Limits: del},
				// Two routes by method with the same rules.
				{Methods: []string{"PUT", "PATCH"}, PathPrefix: "/v1/w", Limits: writes},
				{Methods: []string{"POST"}, PathPrefix: "/v1/w", Limits: writes}}},
			{ID: "acme", Plan: "p", Keys: []string{"acme-key"}}},
		func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := upstream.New(map[string]upstream.Spec{"up": {Targets: []string{up.URL},
		Timeout: 5 * time.Second, DialTimeout: time.Second, IdleConnTimeout: time.Minute, MaxConnsPerTarget: 16}},
		[]upstream.RouteSpec{{Upstream: "up"}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	gw := New(Parts{Tenants: tenants.NewTable(snap), Limiter: fixedVerdict{decided(degrade.Verdict{Allowed: true}, 99, time.Minute, 0)},
		Proxy: proxy, IDs: upstream.NewIDs("test"), Log: quiet})
	for _, tc := range []struct {
		method, uri string
		headers     []string
		want        int
	}{
		{"POST", "/v1/items/1", []string{"X-API-Key: bulk-key", "X-HTTP-Method-Override: DELETE"}, 400},
		{"POST", "/v1/items/1", []string{"X-API-Key: bulk-key", "X-HTTP-Method: delete"}, 400},
		{"POST", "/v1/items/1", []string{"X-API-Key: bulk-key", "X-Method-Override: DELETE"}, 400},
		{"POST", "/v1/items/1?_method=DELETE", []string{"X-API-Key: bulk-key"}, 400},
		{"POST", "/v1/items/1?%5Fmethod=DELETE", []string{"X-API-Key: bulk-key"}, 400},
		{"DELETE", "/v1/items/1", []string{"X-API-Key: bulk-key", "X-HTTP-Method-Override: GET"}, 400},  // the other way round
		{"POST", "/v1/items/1", []string{"X-API-Key: bulk-key", "X-HTTP-Method-Override: PUT"}, 200},    // the same rules
		{"POST", "/v1/other", []string{"X-API-Key: bulk-key", "X-HTTP-Method-Override: DELETE"}, 200},   // no DELETE route here
		{"POST", "/v1/items/1", []string{"X-API-Key: acme-key", "X-HTTP-Method-Override: DELETE"}, 200}, // no routes by method
		{"POST", "/v1/items/1?_method=PUT", []string{"X-API-Key: bulk-key"}, 200},
		{"POST", "/v1/items/1", []string{"X-API-Key: bulk-key", "X-HTTP-Method-Override: DELETE, POST"}, 400}, // a list: Express takes the first
		{"POST", "/v1/items/1", []string{"X-API-Key: bulk-key", "X-HTTP-Method-Override: POST, DELETE"}, 400},
		{"POST", "/v1/items/1", []string{"X-API-Key: bulk-key", "X-HTTP-Method_Override: DELETE"}, 400}, // PHP reads it as the same
		{"POST", "/v1/items/1?.method=DELETE", []string{"X-API-Key: bulk-key"}, 400},                    // PHP's _method
		{"POST", "/v1/items/1?+method=DELETE", []string{"X-API-Key: bulk-key"}, 400},
		{"POST", "/v1/items/1?%20_method=DELETE", []string{"X-API-Key: bulk-key"}, 400}, // PHP drops leading spaces
		{"POST", "/v1/items/1?+_method=DELETE", []string{"X-API-Key: bulk-key"}, 400},
		{"POST", "/v1/items/1?%20%20.method=DELETE", []string{"X-API-Key: bulk-key"}, 400},
		{"POST", "/v1/items/1?%20_method=PUT", []string{"X-API-Key: bulk-key"}, 200},     // the same rules
		{"POST", "/v1/items/1?_method%00x=DELETE", []string{"X-API-Key: bulk-key"}, 400}, // PHP reads a name up to a NUL
		{"POST", "/v1/items/1?%20.method%00=DELETE", []string{"X-API-Key: bulk-key"}, 400},
		{"POST", "/v1/w/1", []string{"X-API-Key: bulk-key", "X-HTTP-Method-Override: PATCH"}, 200}, // other routes, the same rules
	} {
		r := newIdentityRequest(tc.uri, tc.headers...)
		r.tmpl.Header.SetMethod(tc.method)
		if got := r.serve(gw.Serve); got != tc.want {
			t.Errorf("%s %s %q: got %d (%s); want %d", tc.method, tc.uri, tc.headers, got, r.ctx.Response.Body(), tc.want)
		}
	}
	// The check reads the query, which still reaches the upstream as
	// sent: fasthttp writes a query it parsed itself re-encoded (a=1%3Bb,
	// s=a+b, t=~), which breaks a signed query.
	const query = "/v1/items/1?a=1;b=2&s=a%20b&t=%7e&u=%zz&x=a/b?c&&y[]=1"
	r := newIdentityRequest(query, "X-API-Key: bulk-key")
	r.tmpl.Header.SetMethod("POST")
	if got := r.serve(gw.Serve); got != 200 {
		t.Fatalf("POST %s: got %d (%s); want 200", query, got, r.ctx.Response.Body())
	}
	if got := string(up.Last().Header.RequestURI()); got != query {
		t.Errorf("POST %s reached the upstream as %s; want it as sent", query, got)
	}
}
