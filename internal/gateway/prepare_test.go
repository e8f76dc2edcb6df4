package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// TestSentIn: the fields prepare rewrites are read from the raw header
// block in any case; Connection of keep-alive or close alone, or a close
// without Connection (HTTP/1.0), is only that; another hop-by-hop field
// counts as every field sent, a repeated name aside; a folded line or no
// raw block at all counts as every field and a repeated name.
func TestSentIn(t *testing.T) {
	cases := []struct {
		name, request string
		want          sentFields
	}{
		{"plain", "GET / HTTP/1.1\r\nHost: gw\r\nX-API-Key: k\r\nAccept: */*\r\n\r\n", 0},
		{"request ID", "GET / HTTP/1.1\r\nHost: gw\r\nx-request-id: a\r\n\r\n", sentRequestID},
		{"tenant", "GET / HTTP/1.1\r\nHost: gw\r\nX-L1GW-TENANT: evil\r\n\r\n", sentTenant},
		{"underscore", "GET / HTTP/1.1\r\nHost: gw\r\nX_L1gw_Tenant: evil\r\n\r\n", sentUnderscore},
		{"underscore forwarding", "GET / HTTP/1.1\r\nHost: gw\r\nX_Forwarded_Port: 1\r\n\r\n", sentUnderscore | sentForwarded},
		{"client address", "GET / HTTP/1.1\r\nHost: gw\r\ncf-connecting-ip: 1.2.3.4\r\n\r\n", sentForwarded},
		{"forwarded", "GET / HTTP/1.1\r\nHost: gw\r\nforwarded: for=1.2.3.4\r\nX-Forwarded-Host: evil\r\n\r\n", sentForwarded},
		{"connection", "GET / HTTP/1.1\r\nHost: gw\r\nConnection: X-Foo\r\n\r\n", allSent &^ sentRepeated},
		{"chunked", "POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", allSent &^ sentRepeated},
		{"upgrade", "GET / HTTP/1.1\r\nHost: gw\r\nupgrade: websocket\r\n\r\n", allSent &^ sentRepeated},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: gw\r\n\r\n", sentConnection},
		{"keep-alive", "GET / HTTP/1.1\r\nHost: gw\r\nconnection: Keep-Alive\r\n\r\n", sentConnection},
		{"close", "GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", sentConnection},
		{"keep-alive and a name", "GET / HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, X-Foo\r\n\r\n", allSent &^ sentRepeated},
		{"keep-alive, then a name", "GET / HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive\r\nConnection: X-Foo\r\n\r\n", allSent},
		{"folded", "GET / HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive\r\n ,X-Foo\r\n\r\n", allSent},
		{"repeated", "GET / HTTP/1.1\r\nHost: gw\r\nVia: a\r\nAccept: */*\r\nvia: b\r\n\r\n", sentRepeated},
		{"repeated, with Connection", "GET / HTTP/1.1\r\nHost: gw\r\nVia: a\r\nConnection: keep-alive\r\nvia: b\r\n\r\n", sentConnection | sentRepeated},
	}
	for _, tc := range cases {
		var r fasthttp.Request
		if err := r.Read(bufio.NewReader(strings.NewReader(tc.request))); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := sentIn(&r.Header); got != tc.want {
			t.Errorf("%s: sentIn = %05b; want %05b", tc.name, got, tc.want)
		}
	}
	var built fasthttp.Request
	built.Header.Set("X-API-Key", "k")
	if got := sentIn(&built.Header); got != allSent {
		t.Errorf("a request without a raw block: sentIn = %05b; want every field", got)
	}
}

// FuzzPrepareSkipsOnlyWhatIsNotThere: for any header block, the request
// the upstream gets is the same whether prepare skips the deletions of
// the fields sentIn found absent or runs them all, at the edge and behind
// a trusted proxy, over HTTP/1.1 and 1.0.
func FuzzPrepareSkipsOnlyWhatIsNotThere(f *testing.F) {
	for _, s := range []string{
		"Accept: */*\r\n",
		"X-Request-Id: abc\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\n",
		"X-Request-Id: a\r\nX-Request-Id: b\r\nX-L1gw-Tenant: evil\r\n",
		"Connection: X-Request-Id, X-L1gw-Tenant\r\nX-L1gw-Tenant: evil\r\n",
		"Forwarded: for=1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: front\r\n",
		"X_L1gw_Tenant: evil\r\nx_request_id: 1\r\n",
		"Transfer-Encoding: chunked\r\nTrailer: X-Forwarded-For\r\n",
		"Authorization: Bearer bulk-key\r\nX-Request-Id: bad id!\r\n",
		"Cookie: a=1; b=2\r\nCookie: c=3\r\nX-Api-Key: bulk-key\r\n",
		"X-Api-Key: bulk-key\r\nVia: 1.1 one\r\nX-Forwarded-For: 6.6.6.6\r\nvia: 1.1 two\r\nX-Forwarded-For: 1.2.3.4\r\n",
		"Connection: keep-alive\r\nX-Request-Id: a\r\n",
		"Connection: Close\r\nKeep-Alive: 5\r\n",
		"Connection: keep-alive\r\n ,X-Request-Id\r\nX-Request-Id: a\r\n",
		"X-Request-Id: a\r\nVia: 1\r\nX-Request-Id: b\r\nVia: 2\r\nX-Forwarded-Proto: https\r\nVia: 3\r\nX-Forwarded-Proto: http\r\n",
		"X-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\n",
		"X-Forwarded-Port: 1\r\nx_forwarded_ssl: on\r\nCF-Connecting-IP: 6.6.6.6\r\nX-Forwarded-Port: 2\r\nVia: 1\r\n",
	} {
		f.Add(s, false, false)
		f.Add(s, true, false)
		f.Add(s, false, true)
	}
	g := newPrepareGateway(f)
	f.Fuzz(func(t *testing.T, block string, trusted, http10 bool) {
		proto := "HTTP/1.1"
		if http10 {
			proto = "HTTP/1.0"
		}
		wire := "GET /p?user_key=bulk-key&a=1 " + proto + "\r\nHost: gw.test\r\n" + block + "\r\n"
		if strings.Contains(strings.ToLower(block), "transfer-encoding") {
			wire += "0\r\n\r\n"
		}
		var req fasthttp.Request
		if req.Read(bufio.NewReader(strings.NewReader(wire))) != nil {
			return // not a request fasthttp would have served
		}
		peer := net.IPv4(192, 0, 2, 7)
		if trusted {
			peer = net.IPv4(10, 0, 0, 7)
		}
		var got [2]string
		for i, skip := range []bool{false, true} {
			g.ids = upstream.NewIDs("test") // both make the same request ID
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, &net.TCPAddr{IP: peer, Port: 40000}, nil)
			h := &ctx.Request.Header
			a := &admission{tenant: &tenants.Tenant{ID: "bulk"}, keyIn: keyInQuery | keyInAuth, sent: allSent}
			if skip {
				a.sent = sentIn(h)
			}
			g.requestID(h, a)
			g.prepare(&ctx, a)
			got[i] = upstreamView(&ctx.Request)
		}
		if got[0] != got[1] {
			t.Fatalf("the block\n%q\nreaches the upstream as\n%s\nwith every deletion, but as\n%s\nskipping those of absent fields", block, got[0], got[1])
		}
		if want, ok := viaSent(block); ok && !strings.Contains(got[1], "\nvia: "+strings.Join(want, "\nvia: ")+"\n") {
			t.Fatalf("the block\n%q\nreaches the upstream as\n%s\nVia not in the order sent, %q", block, got[1], want)
		}
	})
}

// viaSent are the values of the Via lines of a block in order, when it
// has more than one, none folded, and no Connection line (which may name
// Via). Upstream, Via comes before X-*: its lines end with one.
func viaSent(block string) ([]string, bool) {
	var via []string
	for _, line := range strings.Split(block, "\r\n") {
		if line == "" {
			break // the block ends
		}
		name, value, ok := strings.Cut(line, ":")
		switch {
		case !ok, strings.ContainsAny(line, "\r\n"), strings.HasPrefix(line, " "), strings.HasPrefix(line, "\t"),
			strings.EqualFold(strings.TrimSpace(name), "connection"):
			return nil, false
		case strings.EqualFold(strings.TrimRight(name, " \t"), "via"):
			via = append(via, strings.Trim(value, " \t"))
		}
	}
	return via, len(via) > 1
}

// newPrepareGateway is a gateway that hides the key, from the header, the
// query or Authorization, and trusts 10.0.0.0/8.
func newPrepareGateway(tb testing.TB) *Gateway {
	tb.Helper()
	trusted, err := upstream.ParseTrusted([]string{"10.0.0.0/8"})
	if err != nil {
		tb.Fatal(err)
	}
	g := newIdentityGateway(tb, testkit.Serve(tb, nil), tenants.Options{KeyQuery: "user_key", KeyBasicAuth: true, HideKey: true})
	g.trusted = trusted
	return g
}

// upstreamView is what the upstream reads of a request: its request line,
// whether it closes, and its fields by name, in order within a name
// (prepare may move a field it replaces to the end, which changes
// nothing an upstream reads).
func upstreamView(r *fasthttp.Request) string {
	var b bytes.Buffer
	b.WriteString(string(r.Header.Method()) + " " + string(r.RequestURI()))
	if r.Header.ConnectionClose() {
		b.WriteString(" (close)")
	}
	var lines []string
	for k, v := range r.Header.All() {
		lines = append(lines, strings.ToLower(string(k))+": "+string(v))
	}
	slices.SortStableFunc(lines, func(x, y string) int {
		return strings.Compare(x[:strings.IndexByte(x, ':')], y[:strings.IndexByte(y, ':')])
	})
	for _, l := range lines {
		b.WriteString("\n" + l)
	}
	return b.String()
}

// TestPrepareKeepsTheOrderOfRepeatedFields: fields of one name reach the
// upstream in the order the client sent them (RFC 9110 §5.3), whatever
// prepare removed before them. Behind a proxy that adds its own
// X-Forwarded-For line (HAProxy does), the peer's line must stay last:
// an upstream reading the rightmost untrusted hop must not get the one
// the client wrote.
func TestPrepareKeepsTheOrderOfRepeatedFields(t *testing.T) {
	g := newPrepareGateway(t)
	for _, block := range []string{
		"X-API-Key: bulk-key\r\nAccept: a\r\nX-Forwarded-For: 6.6.6.6\r\nVia: 1.1 one\r\nX-Forwarded-For: 1.2.3.4\r\nVia: 1.1 two\r\n",
		"X-Request-Id: a\r\nX-Request-Id: b\r\nX-Forwarded-For: 6.6.6.6\r\nVia: 1.1 one\r\nX-Forwarded-For: 1.2.3.4\r\nVia: 1.1 two\r\nX-API-Key: bulk-key\r\n",
		"Connection: X-Drop\r\nX-Drop: 1\r\nX-Forwarded-For: 6.6.6.6\r\nVia: 1.1 one\r\nX-Forwarded-For: 1.2.3.4\r\nVia: 1.1 two\r\nX-API-Key: bulk-key\r\n",
	} {
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: gw.test\r\n" + block + "\r\n"))); err != nil {
			t.Fatal(err)
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 40000}, nil)
		h := &ctx.Request.Header
		a := &admission{tenant: &tenants.Tenant{ID: "bulk"}, sent: sentIn(h)}
		g.requestID(h, a)
		g.prepare(&ctx, a)
		if got := string(bytes.Join(h.PeekAll("X-Forwarded-For"), []byte(" | "))); got != "6.6.6.6, 1.2.3.4, 10.0.0.7" {
			t.Errorf("the block\n%q\nreaches the upstream with X-Forwarded-For %q; want 6.6.6.6, 1.2.3.4, 10.0.0.7", block, got)
		}
		if got := string(bytes.Join(h.PeekAll("Via"), []byte(" | "))); got != "1.1 one | 1.1 two" {
			t.Errorf("the block\n%q\nreaches the upstream with Via %q; want 1.1 one | 1.1 two", block, got)
		}
	}
}

// TestPrepareRemovesForwardingFieldsAtTheEdge: from a peer that is not a
// trusted proxy, every field naming where the request came from goes,
// in any case and spelling (X-Forwarded-Port, -Prefix, -Ssl, the client
// address fields of CDNs and frameworks), and the gateway's own
// X-Forwarded-For, -Proto and -Host are the only ones left; from a
// trusted proxy they stay. At maxNames distinct names every one goes
// too; past them admit refuses the request (dropsTooMany).
func TestPrepareRemovesForwardingFieldsAtTheEdge(t *testing.T) {
	g := newPrepareGateway(t)
	spoofed := "X-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /evil\r\nx-forwarded-ssl: on\r\nX_Forwarded_Scheme: https\r\n" +
		"X-Forwarded-Uri: /evil\r\nClient-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\nCF-Connecting-IP: 6.6.6.6\r\n" +
		"Fastly-Client-IP: 6.6.6.6\r\nX-Cluster-Client-IP: 6.6.6.6\r\nForwarded-For: 6.6.6.6\r\nX-Forwarded-Port: 444\r\n"
	var many strings.Builder // with spoofed's 11 names, maxNames
	for i := range maxNames - 11 {
		fmt.Fprintf(&many, "X-Forwarded-N%d: %d\r\n", i, i)
	}
	for _, tc := range []struct {
		name, block string
		peer        net.IP
		kept        bool
	}{
		{"edge", spoofed, net.IPv4(192, 0, 2, 7), false},
		{"edge, maxNames names", many.String() + spoofed, net.IPv4(192, 0, 2, 7), false},
		{"trusted proxy", spoofed, net.IPv4(10, 0, 0, 7), true},
	} {
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: bulk-key\r\nAccept: a\r\n" + tc.block + "\r\n"))); err != nil {
			t.Fatal(err)
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: tc.peer, Port: 40000}, nil)
		h := &ctx.Request.Header
		a := &admission{tenant: &tenants.Tenant{ID: "bulk"}, sent: sentIn(h)}
		if dropsTooMany(h, droppedOf(a.sent, tc.kept)) {
			t.Fatalf("%s: refused as too many names to drop; want at most maxNames", tc.name)
		}
		if tc.name == "edge, maxNames names" {
			var more fasthttp.Request
			if err := more.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: gw.test\r\nX-Forwarded-More: 1\r\n" + tc.block + "\r\n"))); err != nil {
				t.Fatal(err)
			}
			if !dropsTooMany(&more.Header, droppedOf(sentIn(&more.Header), false)) {
				t.Fatalf("%s and one more: not refused; want refused past maxNames", tc.name)
			}
			if dropsTooMany(&more.Header, droppedOf(sentIn(&more.Header), true)) {
				t.Fatalf("%s and one more, from a trusted proxy: refused; want them kept", tc.name)
			}
		}
		g.requestID(h, a)
		g.prepare(&ctx, a)
		var left []string
		for k := range h.All() {
			if name := string(k); upstream.IsForwarding(k) && !slices.Contains([]string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"}, name) {
				left = append(left, name)
			}
		}
		switch {
		case !tc.kept && len(left) > 0:
			t.Errorf("%s: %v reached the upstream; want every client forwarding field removed", tc.name, left)
		case tc.kept && len(left) != 12:
			t.Errorf("%s: %d forwarding fields reached the upstream (%v); want the proxy's 12 kept", tc.name, len(left), left)
		}
		if got := string(h.Peek("X-Forwarded-For")); !tc.kept && got != "192.0.2.7" {
			t.Errorf("%s: X-Forwarded-For %q; want the peer's", tc.name, got)
		}
		if got := string(h.Peek("Accept")); got != "a" {
			t.Errorf("%s: Accept %q; want it untouched", tc.name, got)
		}
	}
}
