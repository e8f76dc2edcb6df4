package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// forwarderCommand is the hidden subcommand the runner re-execs itself
// with to run the bare and naive forwarders in a process of their own.
const forwarderCommand = "forwarder"

// The naive reference: a frozen copy of limiter/lua/decide.lua, run with
// one EVALSHA per request.
var (
	//go:embed naive.lua
	naiveSrc    string
	naiveScript = redis.NewScript(naiveSrc)
)

// Tenants of the bench: every key but limitedKey is allowed benchLimit per
// benchWindow (benchKeys); limitedKey is allowed the -limited-limit per
// limitedWindow.
const (
	benchKey      = "bench-key"
	limitedKey    = "limited-key"
	benchLimit    = 1_000_000_000
	benchWindow   = time.Second
	limitedWindow = time.Hour
	apiKeyHeader  = "X-API-Key"
)

// benchKeys are the keys of n tenants that share the unlimited load:
// benchKey alone, or bench-key-0 … bench-key-<n-1>.
func benchKeys(n int) []string {
	if n <= 1 {
		return []string{benchKey}
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = benchKey + "-" + strconv.Itoa(i)
	}
	return keys
}

// forwarder is a fasthttp server that sends every request to one upstream,
// after one decide script call when rdb is set.
type forwarder struct {
	client       *fasthttp.HostClient
	rdb          redis.Scripter // nil: bare; the client, or its AutoPipeliner
	limitedLimit int64
	seq          atomic.Uint64
	// decisions times each decide call, under the gateway's metric name
	// (l1gw_decision_duration_seconds): the runner reads both alike.
	decisions *metrics.Histogram
}

// forwarderMain runs `forwarder -listen ADDR -upstream ADDR [-redis ADDR
// [-autopipeline]]`:
// it prints "listening 127.0.0.1:PORT 127.0.0.1:PORT" (the proxy, then
// its /metrics) on stdout once it serves and runs until SIGTERM or SIGINT.
// It returns the exit code.
func forwarderMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(forwarderCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "listen address (loopback only)")
	upstream := fs.String("upstream", "", "upstream 127.0.0.1:port")
	redisAddr := fs.String("redis", "", "Redis 127.0.0.1:port: one decide call per request (naive); empty: bare")
	autopipe := fs.Bool("autopipeline", false, "send the decide calls through go-redis' AutoPipeline (with -redis)")
	limited := fs.Int64("limited-limit", defaultLimitedLimit, "the limited tenant's limit per hour")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *autopipe && *redisAddr == "" {
		fmt.Fprintln(stderr, "benchcompare forwarder: -autopipeline needs -redis")
		return 2
	}
	if err := serveForwarder(*listen, *upstream, *redisAddr, *autopipe, *limited, stdout); err != nil {
		fmt.Fprintln(stderr, "benchcompare forwarder:", err)
		return 1
	}
	return 0
}

// serveForwarder checks the addresses, connects, listens, announces the
// addresses on stdout and serves until a signal. With autopipe the decide
// calls go through go-redis' blocking AutoPipeline at its defaults, which
// batches the calls of concurrent requests into one write.
func serveForwarder(listen, upstream, redisAddr string, autopipe bool, limited int64, stdout io.Writer) error {
	for _, a := range []string{listen, upstream} {
		if err := harness.CheckLoopback(a); err != nil {
			return err
		}
	}
	set := metrics.NewSet()
	f := &forwarder{
		decisions: set.NewHistogram(`l1gw_decision_duration_seconds`),
		client: &fasthttp.HostClient{
			Addr: upstream, MaxConns: 1024, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
			MaxIdleConnDuration: time.Minute, NoDefaultUserAgentHeader: true, DisablePathNormalizing: true,
		},
		limitedLimit: limited,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if redisAddr != "" {
		if err := harness.CheckLoopback(redisAddr); err != nil {
			return err
		}
		rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
		defer rdb.Close()
		if err := naiveScript.Load(ctx, rdb).Err(); err != nil {
			return fmt.Errorf("load the naive script into %s: %w", redisAddr, err)
		}
		f.rdb = rdb
		if autopipe {
			ap, err := rdb.AutoPipeline()
			if err != nil {
				return fmt.Errorf("autopipeline: %w", err)
			}
			defer ap.Close()
			f.rdb = ap
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for metrics: %w", err)
	}
	ms := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		set.WritePrometheus(w)
	})}
	go ms.Serve(mln) //nolint:errcheck // closed below
	defer ms.Close()
	s := &fasthttp.Server{
		Handler: f.handle, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		IdleTimeout: time.Minute, NoDefaultServerHeader: true, CloseOnShutdown: true,
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	fmt.Fprintln(stdout, "listening", ln.Addr().String(), mln.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// handle admits (naive only) and forwards one request.
func (f *forwarder) handle(ctx *fasthttp.RequestCtx) {
	if f.rdb != nil && !f.admit(ctx) {
		return
	}
	if err := f.client.Do(&ctx.Request, &ctx.Response); err != nil {
		ctx.Response.Reset()
		ctx.Error("upstream: "+err.Error(), fasthttp.StatusBadGateway)
	}
}

// admit runs the decide script for the request's tenant (its X-API-Key)
// with one rule and answers 401, 429 or 503 when it must not be forwarded.
func (f *forwarder) admit(ctx *fasthttp.RequestCtx) bool {
	key := ctx.Request.Header.Peek(apiKeyHeader)
	if len(key) == 0 {
		ctx.Error("missing "+apiKeyHeader, fasthttp.StatusUnauthorized)
		return false
	}
	tenant := string(key)
	limit, window := int64(benchLimit), benchWindow
	if tenant == limitedKey {
		limit, window = f.limitedLimit, limitedWindow
	}
	member := "naive:" + strconv.FormatUint(f.seq.Add(1), 36)
	keys := []string{"bench:{" + tenant + "}:rule"}
	start := time.Now()
	v, err := naiveScript.Run(ctx, f.rdb, keys, member, window.Microseconds(), limit, 1).Int64Slice()
	f.decisions.UpdateDuration(start)
	if err != nil {
		ctx.Error("redis: "+err.Error(), fasthttp.StatusServiceUnavailable)
		return false
	}
	if len(v) == 0 || v[0] != 1 {
		ctx.Error("rate limited", fasthttp.StatusTooManyRequests)
		return false
	}
	return true
}
