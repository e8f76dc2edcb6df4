package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// App is a gateway built from a config, ready to run.
type App struct {
	gw     *Gateway
	server *Server
	proxy  *upstream.Proxy
	cfg    config.Server
}

// Build assembles the parts a validated config describes. It does no I/O.
func Build(cfg *config.Config, log *slog.Logger) (*App, error) {
	snap, err := tenants.Build(cfg.Tenants, cfg.Plans, cfg.TenantList, func(name string) bool {
		_, ok := cfg.Upstreams[name]
		return ok
	})
	if err != nil {
		return nil, fmt.Errorf("build tenants: %w", err)
	}
	table := tenants.NewTable(snap)
	var store limiter.Store
	switch cfg.Redis.Mode {
	case limiter.ModeMemory:
		store = limiter.NewMemoryStore(nil)
	default:
		return nil, fmt.Errorf("redis.mode %q is not supported yet", cfg.Redis.Mode)
	}
	guard, err := degrade.New(store, cfg.RateLimit.Settings, log)
	if err != nil {
		return nil, err
	}
	proxy, err := upstream.New(cfg.Upstreams, cfg.Routes, log)
	if err != nil {
		return nil, fmt.Errorf("build upstreams: %w", err)
	}
	admin, err := NewAdmin(table, cfg.Redis.Mode, cfg.Redacted())
	if err != nil {
		return nil, fmt.Errorf("build admin API: %w", err)
	}
	gw := New(Parts{Tenants: table, Limiter: guard, Proxy: proxy, IDs: upstream.NewIDs(randomHex(4)),
		TrustForwarded: cfg.Server.TrustForwarded, Log: log})
	return &App{gw: gw, server: NewServer(cfg.Server, gw, admin, log), proxy: proxy, cfg: cfg.Server}, nil
}

// Listen opens the proxy and admin listeners from the config.
func (a *App) Listen() (proxyLn, adminLn net.Listener, err error) {
	proxyLn, err = net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("server.listen: %w", err)
	}
	adminLn, err = net.Listen("tcp", a.cfg.AdminListen)
	if err != nil {
		proxyLn.Close()
		return nil, nil, fmt.Errorf("server.admin_listen: %w", err)
	}
	return proxyLn, adminLn, nil
}

// Run serves on the listeners, with upstream health checks, until ctx ends;
// then it shuts down gracefully (see Server.Serve).
func (a *App) Run(ctx context.Context, proxyLn, adminLn net.Listener) error {
	healthCtx, stopHealth := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.proxy.Run(healthCtx)
	}()
	err := a.server.Serve(ctx, proxyLn, adminLn)
	stopHealth()
	wg.Wait()
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("BUG: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}
