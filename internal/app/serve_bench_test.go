package app

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/gateway"
	"github.com/l1gw/l1gw/internal/redistest"
)

// plainUpstream answers every request with a fixed body, allocating nothing.
func plainUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("upstream ok") }}
	go s.Serve(ln)
	tb.Cleanup(func() { s.Shutdown() })
	return "http://" + ln.Addr().String()
}

// handlerFixture calls Gateway.Serve directly on a reused RequestCtx.
type handlerFixture struct {
	gw   *gateway.Gateway
	tmpl fasthttp.Request
	ctx  fasthttp.RequestCtx
}

func newHandlerFixture(tb testing.TB, key, method, path string, sets ...string) *handlerFixture {
	tb.Helper()
	app, err := Build(loadConfig(tb, plainUpstream(tb), sets...), quiet)
	if err != nil {
		tb.Fatal(err)
	}
	f := &handlerFixture{gw: app.gw}
	f.tmpl.SetRequestURI("http://gw.test" + path)
	f.tmpl.Header.SetMethod(method)
	f.tmpl.Header.Set("X-API-Key", key)
	f.tmpl.Header.Set("User-Agent", "bench")
	f.ctx.Init(&f.tmpl, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}, nil)
	return f
}

// serve runs one request and returns its status.
func (f *handlerFixture) serve() int {
	f.tmpl.CopyTo(&f.ctx.Request)
	f.ctx.Response.Reset()
	f.gw.Serve(&f.ctx)
	return f.ctx.Response.StatusCode()
}

// BenchmarkServe is the whole request path against the memory store and a
// loopback upstream: admitted (forwarded), denied (429), unknown key (401).
func BenchmarkServe(b *testing.B) {
	cases := []struct {
		name, key, method, path string
		want                    int
	}{
		{"admitted", "bulk-key", "GET", "/bench", 200},
		{"denied", "acme-key", "GET", "/bench", 429},
		{"unknown_key", "nope", "GET", "/bench", 401},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			f := newHandlerFixture(b, tc.key, tc.method, tc.path)
			for range 5 {
				f.serve() // warm up; for acme this exhausts the 3/minute plan
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if code := f.serve(); code != tc.want {
					b.Fatalf("status %d; want %d", code, tc.want)
				}
			}
		})
	}
}

// BenchmarkDirectUpstream is the same upstream hit with the same client
// settings and no gateway: the baseline BenchmarkServe/admitted compares to.
func BenchmarkDirectUpstream(b *testing.B) {
	c := &fasthttp.HostClient{Addr: plainUpstream(b)[len("http://"):]}
	req, resp := &fasthttp.Request{}, &fasthttp.Response{}
	req.SetRequestURI("http://gw.test/bench")
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Do(req, resp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeRedis is the whole request path against a local
// redis-server (standalone, exact consistency): one EVALSHA per admitted
// request, the deny cache for the denied one.
func BenchmarkServeRedis(b *testing.B) {
	srv := redistest.Server(b)
	for _, tc := range []struct {
		name, key string
		want      int
	}{
		{"admitted", "bulk-key", 200},
		{"denied", "acme-key", 429},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := newHandlerFixture(b, tc.key, "GET", "/bench", redisSets(srv.Addr(), "ratelimit.budget=1s")...)
			for range 5 {
				f.serve()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if code := f.serve(); code != tc.want {
					b.Fatalf("status %d; want %d", code, tc.want)
				}
			}
		})
	}
}

// BenchmarkServeRedisParallel is BenchmarkServeRedis/admitted with 64
// requests in flight: the decisions share batches.
func BenchmarkServeRedisParallel(b *testing.B) {
	srv := redistest.Server(b)
	sets := redisSets(srv.Addr(), "ratelimit.budget=1s")
	app, err := Build(loadConfig(b, plainUpstream(b), sets...), quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		f := &handlerFixture{gw: app.gw}
		f.tmpl.SetRequestURI("http://gw.test/bench")
		f.tmpl.Header.Set("X-API-Key", "bulk-key")
		f.ctx.Init(&f.tmpl, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}, nil)
		for pb.Next() {
			if code := f.serve(); code != 200 {
				b.Errorf("status %d; want 200", code)
				return
			}
		}
	})
}
