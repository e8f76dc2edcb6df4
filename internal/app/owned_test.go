package app

import (
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
)

// headerLines are the values of every line of name in the request head
// at the start of raw, by a case-insensitive match on the name.
func headerLines(raw, name string) []string {
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	var vs []string
	for _, line := range strings.Split(head, "\r\n")[1:] {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, name) {
			vs = append(vs, strings.TrimSpace(v))
		}
	}
	return vs
}

// TestOwnedHeadersReachTheUpstreamOnce: a header the gateway sets reaches
// the upstream exactly once, with the gateway's value, however many copies
// the client sent and in whatever case; one it strips does not reach it.
func TestOwnedHeadersReachTheUpstreamOnce(t *testing.T) {
	cases := []struct {
		header string
		sent   []string // the client's copies
		want   string   // the one value upstream; "" for none at all
		not    string   // a value it must not be, when want is the gateway's own
	}{
		{"X-L1gw-Tenant", []string{"X-L1gw-Tenant: acme", "x-l1gw-tenant: root"}, "bulk", ""},
		{"X-Forwarded-For", []string{"X-Forwarded-For: 10.0.0.1", "x-forwarded-for: 10.0.0.2"}, "127.0.0.1", ""},
		{"X-Forwarded-Proto", []string{"X-Forwarded-Proto: https", "X-FORWARDED-PROTO: https"}, "http", ""},
		{"X-Forwarded-Host", []string{"X-Forwarded-Host: evil.example", "x-forwarded-host: evil.example"}, "gw", ""},
		{"X-Request-Id", []string{"X-Request-Id: aaa", "x-request-id: bbb"}, "*", "aaa bbb"},
		{"Forwarded", []string{"Forwarded: for=10.0.0.1", "forwarded: for=10.0.0.2"}, "", ""},
		{"X_L1gw_Tenant", []string{"X_L1gw_Tenant: root", "x_l1gw_tenant: root"}, "", ""},
		{"X_Forwarded_For", []string{"X_Forwarded_For: 10.0.0.1"}, "", ""},
		// '_' for only some '-': CGI reads them as the gateway's too.
		{"X-L1gw_Tenant", []string{"X-L1gw_Tenant: bob"}, "", ""},
		{"X_l1gw-tenant", []string{"X_l1gw-tenant: bob"}, "", ""},
		{"X-Forwarded_For", []string{"X-Forwarded_For: 6.6.6.6"}, "", ""},
		{"X_Forwarded-For", []string{"X_Forwarded-For: 6.6.6.6"}, "", ""},
		{"X-Real_IP", []string{"X-Real_IP: 6.6.6.6"}, "", ""},
		{"X-Forwarded_Host", []string{"X-Forwarded_Host: evil.example"}, "", ""},
		{"X-Request_Id", []string{"X-Request_Id: aaa"}, "", ""},
		// Many lines of one spelling do not hide another.
		{"X-L1gw_Tenant", append(slices.Repeat([]string{"X-Real_IP: 6.6.6.6"}, 40), "X-L1gw_Tenant: bob"), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.header, func(t *testing.T) {
			up := testkit.StartRawUpstream(t)
			gw := startApp(t, loadConfig(t, up.URL))
			c := dial(t, gw.proxy)
			c.send("GET /owned HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\n" + strings.Join(tc.sent, "\r\n") + "\r\n\r\n")
			if resp := c.response(); resp.StatusCode() != 200 {
				t.Fatalf("got %d; want 200", resp.StatusCode())
			}
			got := headerLines(up.Raw(), tc.header)
			switch {
			case tc.want == "" && len(got) > 0:
				t.Fatalf("upstream got %s %q; want none", tc.header, got)
			case tc.want == "":
			case len(got) != 1:
				t.Fatalf("upstream got %d lines of %s %q; want exactly one", len(got), tc.header, got)
			case tc.want != "*" && got[0] != tc.want:
				t.Fatalf("upstream got %s: %q; want %q", tc.header, got[0], tc.want)
			case tc.not != "" && strings.Contains(tc.not, got[0]):
				t.Fatalf("upstream got the client's %s %q; want the gateway's own", tc.header, got[0])
			}
		})
	}
	t.Run("trailer", func(t *testing.T) {
		up := testkit.StartRawUpstream(t)
		gw := startApp(t, loadConfig(t, up.URL))
		c := dial(t, gw.proxy)
		c.send("POST /owned HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\nTransfer-Encoding: chunked\r\nTrailer: X-L1gw-Tenant\r\n\r\n" +
			"5\r\nhello\r\n0\r\nX-L1gw-Tenant: root\r\n\r\n")
		resp := c.response()
		if resp.StatusCode() != 200 && resp.StatusCode() != 400 {
			t.Fatalf("got %d; want 200, or 400 for a refused trailer", resp.StatusCode())
		}
		if raw := up.Raw(); strings.Contains(raw, "root") {
			t.Fatalf("the client's trailer reached the upstream:\n%s", raw)
		}
	})
}

// TestUnderscoredNamesLeaveCookiesAlone: a request with '_' in a field
// name, whose respellings of the gateway's own fields go, keeps its
// Cookie lines as sent (walking fasthttp's parsed header would merge them
// and drop their quotes).
func TestUnderscoredNamesLeaveCookiesAlone(t *testing.T) {
	raw := admittedThrough(t, "GET /owned HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\nCookie: sid=\"a b\"; flag; x=1;y=2\r\nX_Custom: 1\r\nCookie: z=3\r\nX-L1gw_Tenant: bob\r\n\r\n")
	if got := headerLines(raw, "Cookie"); len(got) != 2 || got[0] != `sid="a b"; flag; x=1;y=2` || got[1] != "z=3" {
		t.Errorf("upstream got Cookie %q; want the two lines as sent", got)
	}
	if got := headerLines(raw, "X_Custom"); len(got) != 1 {
		t.Errorf("upstream got X_Custom %q; want it as sent", got)
	}
	if got := headerLines(raw, "X-L1gw_Tenant"); len(got) != 0 {
		t.Errorf("upstream got X-L1gw_Tenant %q; want none", got)
	}
}

// TestKeyHeaderWithAnUnderscore: a key header configured with a '_' is
// read as configured, and the same name spelt with '-' is refused, as CGI
// reads both as one.
func TestKeyHeaderWithAnUnderscore(t *testing.T) {
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL, "tenants.key_header=X-Api_Key"))
	for _, tc := range []struct {
		headers string
		want    int
	}{
		{"X-Api_Key: bulk-key", 200},
		{"x-api_key: bulk-key", 200},
		{"X-Api_Key: bulk-key\r\nX-Api-Key: acme-key", 400},
		{"Authorization: Bearer bulk-key\r\nX-Api-Key: acme-key", 400},
	} {
		c := dial(t, gw.proxy)
		c.send("GET /x HTTP/1.1\r\nHost: gw\r\n" + tc.headers + "\r\n\r\n")
		if resp := c.response(); resp.StatusCode() != tc.want {
			t.Errorf("%q: got %d (%s); want %d", tc.headers, resp.StatusCode(), resp.Body(), tc.want)
		}
	}
}

// TestKeyNeverReachesTheUpstream: with hide_key (the default) no API key
// reaches the upstream, even one sent in both the key header and
// Authorization; an Authorization that is not a key is the upstream's and
// passes. A key header or Authorization sent twice is ambiguous: 400; so
// is another key of a tenant's in Authorization beside the key header.
func TestKeyNeverReachesTheUpstream(t *testing.T) {
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL))
	cases := []struct {
		name    string
		headers string
		status  int
		auth    []string // the Authorization lines the upstream gets
	}{
		{"key in both", "X-API-Key: bulk-key\r\nAuthorization: Bearer bulk-key", 200, nil},
		{"another key in Authorization", "X-API-Key: bulk-key\r\nAuthorization: Bearer acme-key", 400, nil},
		{"key in Authorization only", "Authorization: Bearer bulk-key", 200, nil},
		{"upstream credentials", "X-API-Key: bulk-key\r\nAuthorization: Basic dXNlcjpwYXNz", 200, []string{"Basic dXNlcjpwYXNz"}},
		{"key header twice", "X-API-Key: bulk-key\r\nx-api-key: acme-key", 400, nil},
		{"Authorization twice", "Authorization: Bearer bulk-key\r\nAuthorization: Bearer acme-key", 400, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.Raw())
			c := dial(t, gw.proxy)
			c.send("GET /k HTTP/1.1\r\nHost: gw\r\n" + tc.headers + "\r\n\r\n")
			if resp := c.response(); resp.StatusCode() != tc.status {
				t.Fatalf("got %d; want %d", resp.StatusCode(), tc.status)
			}
			raw := up.Raw()[before:]
			if tc.status != 200 {
				if raw != "" {
					t.Fatalf("upstream got %q; want nothing", raw)
				}
				return
			}
			if strings.Contains(raw, "bulk-key") || strings.Contains(raw, "acme-key") {
				t.Fatalf("a key reached the upstream:\n%s", raw)
			}
			if got := headerLines(raw, "Authorization"); strings.Join(got, "|") != strings.Join(tc.auth, "|") {
				t.Fatalf("upstream Authorization %q; want %q", got, tc.auth)
			}
		})
	}
}

// TestQueryKeyNeverReachesTheUpstream: with tenants.key_query and
// tenants.key_basic_auth set in the config, the key parameter leaves the
// request line, the rest of the query as sent, and Basic credentials that
// held the key leave the head.
func TestQueryKeyNeverReachesTheUpstream(t *testing.T) {
	up := testkit.StartRawUpstream(t)
	gw := startApp(t, loadConfig(t, up.URL, "tenants.key_query=user_key", "tenants.key_basic_auth=true"))
	cases := []struct{ name, target, headers, line string }{
		{"query", "/k?a=%41&user_key=bulk-key&b", "", "GET /k?a=%41&b HTTP/1.1"},
		{"Basic", "/k?a=1", "Authorization: Basic YXBpOmJ1bGsta2V5\r\n", "GET /k?a=1 HTTP/1.1"}, // api:bulk-key
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.Raw())
			c := dial(t, gw.proxy)
			c.send("GET " + tc.target + " HTTP/1.1\r\nHost: gw\r\n" + tc.headers + "\r\n")
			if resp := c.response(); resp.StatusCode() != 200 {
				t.Fatalf("got %d (%s); want 200", resp.StatusCode(), resp.Body())
			}
			raw := up.Raw()[before:]
			if line, _, _ := strings.Cut(raw, "\r\n"); line != tc.line {
				t.Fatalf("upstream request line %q; want %q", line, tc.line)
			}
			if strings.Contains(raw, "bulk-key") || strings.Contains(raw, "YXBpOmJ1bGsta2V5") {
				t.Fatalf("the key reached the upstream:\n%s", raw)
			}
		})
	}
}

// TestOwnedHeadersReachTheClientOnce: the upstream's copies of a header
// the gateway sets on the answer, in any number and case, give way to
// the gateway's one.
func TestOwnedHeadersReachTheClientOnce(t *testing.T) {
	up := testkit.StartUpstream(t, func(ctx *fasthttp.RequestCtx) {
		for _, kv := range [][2]string{{"X-Request-Id", "spoof1"}, {"x-request-id", "spoof2"},
			{"X-RateLimit-Status", "ok"}, {"X-RateLimit-Status", "spoofed2"}, {"x-ratelimit-remaining", "888888"}} {
			ctx.Response.Header.Add(kv[0], kv[1])
		}
		ctx.SetBodyString("hi")
	})
	gw := startApp(t, loadConfig(t, up.URL))
	c := dial(t, gw.proxy)
	c.send("GET /owned HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\n\r\n")
	resp := c.response()
	if resp.StatusCode() != 200 {
		t.Fatalf("got %d; want 200", resp.StatusCode())
	}
	for _, h := range []string{"X-Request-Id", "X-Ratelimit-Status"} {
		var got []string
		for _, v := range resp.Header.PeekAll(h) {
			got = append(got, string(v))
		}
		if len(got) != 1 || strings.HasPrefix(got[0], "spoof") {
			t.Errorf("%s: %q; want the gateway's one", h, got)
		}
	}
	if strings.Contains(resp.String(), "888888") {
		t.Errorf("the upstream's X-RateLimit-Remaining reached the client:\n%s", resp.String())
	}
}

// TestNoContentTypeIsAdded: an answer the upstream sent without
// Content-Type reaches the client without one, not as text/plain.
func TestNoContentTypeIsAdded(t *testing.T) {
	addr, _ := testkit.Answering(t, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\x89PNG")
	gw := startApp(t, loadConfig(t, "http://"+addr))
	c := dial(t, gw.proxy)
	c.send("GET /img HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\n\r\n")
	status, head := readHead(t, c) // as sent: a parsed header reports a default type
	if status != "HTTP/1.1 200 OK" {
		t.Fatalf("got %q; want the upstream's 200", status)
	}
	if ct, ok := head["content-type"]; ok {
		t.Errorf("Content-Type %q; want none, as the upstream sent", ct)
	}
}

// TestNoFieldIsAddedToTheRequest: a request reaches the upstream without
// fields its client did not send and the gateway does not list: no
// User-Agent for a client that sent none, no Content-Type for a body
// sent without one (fasthttp's client adds both by default).
func TestNoFieldIsAddedToTheRequest(t *testing.T) {
	raw := strings.ToLower(admittedThrough(t, "POST /bare HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\nContent-Length: 5\r\n\r\nhello"))
	if !strings.HasPrefix(raw, "post /bare http/1.1\r\n") || !strings.HasSuffix(raw, "\r\n\r\nhello") {
		t.Fatalf("the upstream read\n%s\nwant the POST and its body", raw)
	}
	for _, name := range []string{"user-agent:", "content-type:"} {
		if strings.Contains(raw, "\n"+name) {
			t.Errorf("%s reached the upstream, which the client did not send:\n%s", name, raw)
		}
	}
}
