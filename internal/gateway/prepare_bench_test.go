package gateway

import (
	"bufio"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// BenchmarkHeaderWork is what the gateway does to one request's and one
// response's fields: read which it must rewrite, set the request ID,
// prepare the upstream request (the key hidden), strip the response. The
// request of each case is copied in anew each time, as fasthttp reads it.
func BenchmarkHeaderWork(b *testing.B) {
	const head = "GET /v1/items?id=7 HTTP/1.1\r\nHost: api.example\r\nUser-Agent: k6/0.50\r\nAccept: application/json\r\nX-API-Key: bulk-key\r\n"
	for _, bc := range []struct{ name, fields string }{
		{"plain", ""},
		{"keep-alive", "Connection: keep-alive\r\n"},
		{"hop-by-hop", "Connection: keep-alive, X-Trace\r\nX-Trace: 1\r\nTe: trailers\r\n"},
		{"repeated", "X-Forwarded-For: 198.51.100.1\r\nVia: 1.1 edge\r\nX-Forwarded-For: 203.0.113.9\r\nVia: 1.1 lb\r\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := newPrepareGateway(b)
			var tmpl fasthttp.Request
			if err := tmpl.Read(bufio.NewReader(strings.NewReader(head + bc.fields + "\r\n"))); err != nil {
				b.Fatal(err)
			}
			var ctx fasthttp.RequestCtx
			ctx.Init(&tmpl, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 40000}, nil)
			var resp fasthttp.ResponseHeader
			resp.Set("Content-Type", "application/json")
			resp.Set("Cache-Control", "no-store")
			t := &tenants.Tenant{ID: "bulk"}
			b.ReportAllocs()
			for b.Loop() {
				tmpl.CopyTo(&ctx.Request)
				resp.CopyTo(&ctx.Response.Header)
				a := admission{tenant: t}
				a.sent = sentIn(&ctx.Request.Header)
				g.requestID(&ctx.Request.Header, &a)
				g.prepare(&ctx, &a)
				upstream.StripResponseHopByHop(&ctx.Response.Header)
			}
		})
	}
}
