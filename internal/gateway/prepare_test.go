package gateway

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

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
		reqID := append([]byte(nil), g.ids.EnsureRequestID(h)...)
		g.prepare(&ctx, &tenants.Tenant{ID: "bulk"}, 0, reqID)
		if got := string(bytes.Join(h.PeekAll("X-Forwarded-For"), []byte(" | "))); got != "6.6.6.6, 1.2.3.4, 10.0.0.7" {
			t.Errorf("the block\n%q\nreaches the upstream with X-Forwarded-For %q; want 6.6.6.6, 1.2.3.4, 10.0.0.7", block, got)
		}
		if got := string(bytes.Join(h.PeekAll("Via"), []byte(" | "))); got != "1.1 one | 1.1 two" {
			t.Errorf("the block\n%q\nreaches the upstream with Via %q; want 1.1 one | 1.1 two", block, got)
		}
	}
}
