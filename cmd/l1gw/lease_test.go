package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// TestLeasesOfAKilledGatewayExpire: a gateway process killed (SIGKILL)
// while two requests hold a tenant's concurrency limit of 2 never gives
// the leases back. Another gateway on the same Redis refuses the tenant
// until they expire (tenants.lease_ttl, 5s here), then admits it again.
func TestLeasesOfAKilledGatewayExpire(t *testing.T) {
	srv := redistest.Server(t)
	arrived := make(chan struct{}, 4)
	upURL := testkit.Serve(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/slow" {
			arrived <- struct{}{}
			time.Sleep(5 * time.Second)
		}
		ctx.SetBodyString("up")
	})
	dir := t.TempDir()
	config := func(name, proxy, admin string) string {
		file := filepath.Join(dir, name+".yaml")
		cfg := fmt.Sprintf(`server: {listen: %q, admin_listen: %q}
redis: {mode: standalone, addrs: [%q]}
ratelimit: {key_prefix: kill}
tenants: {lease_ttl: 5s}
plans: {crowd: {concurrency: 2, limits: [{name: per_second, limit: 1000, window: 1s}]}}
tenant_list: [{id: crowd, plan: crowd, keys: [crowd-key]}]
upstreams: {demo: {targets: [%q], timeout: 30s, health: {path: ""}}}
routes: [{path_prefix: /, upstream: demo}]
`, proxy, admin, srv.Addr(), upURL)
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	get := func(proxy, path string) int {
		req, resp := &fasthttp.Request{}, &fasthttp.Response{}
		req.SetRequestURI("http://" + proxy + path)
		req.Header.Set("X-API-Key", "crowd-key")
		if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
			return -1
		}
		return resp.StatusCode()
	}

	proxyA, adminA := freeAddr(t), freeAddr(t)
	a, _ := serveFile(t, config("a", proxyA, adminA), adminA)
	for range 2 {
		go get(proxyA, "/slow") // never answered: the gateway dies first
	}
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the two slow requests did not reach the upstream")
		}
	}
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait() //nolint:errcheck // killed
	killed := time.Now()

	key := limiter.LeaseKey("kill", "crowd", tenants.ConcurrencyRule)
	if n := srv.Client(t).ZCard(context.Background(), key).Val(); n != 2 {
		t.Fatalf("%s holds %d leases after the kill; want the 2 the dead gateway held", key, n)
	}
	proxyB, adminB := freeAddr(t), freeAddr(t)
	serveFile(t, config("b", proxyB, adminB), adminB)
	if code := get(proxyB, "/fast"); code != 429 {
		t.Fatalf("another gateway, %s after the kill: %d; want 429 (the dead gateway's leases last 5s)", time.Since(killed).Round(time.Millisecond), code)
	}
	time.Sleep(time.Until(killed.Add(5300 * time.Millisecond)))
	for i := range 2 {
		if code := get(proxyB, "/fast"); code != 200 {
			t.Fatalf("request %d after the leases expired: %d; want 200", i+1, code)
		}
	}
}
