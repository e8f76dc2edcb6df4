package app

import (
	"context"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
)

// newHandlerFixture serves a request to the gateway Build makes of the
// test config (memory store, a loopback upstream), without a listener.
func newHandlerFixture(tb testing.TB, key, method, path string, sets ...string) *testkit.Handler {
	tb.Helper()
	app, err := Build(loadConfig(tb, testkit.Serve(tb, nil), sets...), quiet)
	if err != nil {
		tb.Fatal(err)
	}
	return testkit.NewHandler(app.gw.Serve, key, method, path)
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
				f.Serve() // warm up; for acme this exhausts the 3/minute plan
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if code := f.Serve(); code != tc.want {
					b.Fatalf("status %d; want %d", code, tc.want)
				}
			}
		})
	}
}

// BenchmarkDirectUpstream is the same upstream hit with the same client
// settings and no gateway: the baseline BenchmarkServe/admitted compares to.
func BenchmarkDirectUpstream(b *testing.B) {
	c := &fasthttp.HostClient{Addr: testkit.Serve(b, nil)[len("http://"):]}
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
				f.Serve()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if code := f.Serve(); code != tc.want {
					b.Fatalf("status %d; want %d", code, tc.want)
				}
			}
		})
	}
}

// BenchmarkServeRedisParallel is BenchmarkServeRedis/admitted with 64
// requests in flight: the decisions share batches.
func BenchmarkServeRedisParallel(b *testing.B) {
	serveParallel(b, "ratelimit.consistency=exact")
}

// BenchmarkServeReplicaParallel is BenchmarkServeRedisParallel under
// replica consistency (the replica is the primary): each decision sends
// this gateway's pending admissions, so its cost grows with them.
func BenchmarkServeReplicaParallel(b *testing.B) {
	serveParallel(b, "ratelimit.consistency=replica")
}

// serveParallel serves admitted requests, 64 in flight, on a local
// redis-server with the given settings.
func serveParallel(b *testing.B, sets ...string) {
	srv := redistest.Server(b)
	app, err := Build(loadConfig(b, testkit.Serve(b, nil), redisSets(srv.Addr(), append(sets, "ratelimit.budget=1s")...)...), quiet)
	if err != nil {
		b.Fatal(err)
	}
	// The store's recorder and lease releases, as App.Run runs them:
	// without the recorder, replica decisions would wait for it, then shed.
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { app.redis.Run(ctx); close(ran) }()
	b.Cleanup(func() { stop(); <-ran })
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		f := testkit.NewHandler(app.gw.Serve, "bulk-key", "GET", "/bench")
		for pb.Next() {
			if code := f.Serve(); code != 200 {
				b.Errorf("status %d; want 200", code)
				return
			}
		}
	})
}
