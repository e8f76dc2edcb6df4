// Package app builds l1gw from a validated config and runs it: the store
// and its clients, the guard, the upstreams, the request path, the admin
// API, the two listeners, and the order of start and shutdown.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/internal/admin"
	"github.com/l1gw/l1gw/internal/credfile"
	"github.com/l1gw/l1gw/internal/gateway"
	"github.com/l1gw/l1gw/internal/registry"
	"github.com/l1gw/l1gw/internal/tlsterm"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// App is a gateway built from a config, ready to run.
type App struct {
	gw      *gateway.Gateway
	guard   *degrade.Guard
	server  *Server
	proxy   *upstream.Proxy
	clients *limiter.Clients    // nil for the memory store
	redis   *limiter.RedisStore // nil for the memory store
	certs   *tlsterm.Store      // nil without server.tls
	reload  *reloader
	sync    *registry.Syncer // nil unless tenants.source is redis or both
	admin   *admin.Admin
	// adminToken is server.admin_token_file; nil without one.
	adminToken *credfile.File
	cfg        config.Server
	log        *slog.Logger
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
	store, redisStore, clients, err := newStore(cfg)
	if err != nil {
		return nil, err
	}
	guard, err := degrade.New(store, cfg.RateLimit.Settings, degrade.Options{Log: log})
	if err != nil {
		return nil, err
	}
	proxy, err := upstream.New(cfg.Upstreams, cfg.Routes, log)
	if err != nil {
		return nil, fmt.Errorf("build upstreams: %w", err)
	}
	rl := newReloader(cfg, table, proxy, log)
	token, tokenFile := cfg.Server.AdminToken, (*credfile.File)(nil)
	if cfg.Server.AdminTokenFile != "" {
		if tokenFile, err = credfile.OpenToken("server.admin_token_file", cfg.Server.AdminTokenFile); err != nil {
			return nil, err
		}
		token = tokenFile.Value()
	}
	reg, sync := newRegistry(cfg, clients, rl)
	parts := admin.Parts{Registry: reg, File: rl.fileView, RegistryStatus: registryStatus(sync, table), Tenants: table, StoreName: cfg.Redis.Mode, Limits: store, Log: log,
		Breaker: func() string { return guard.BreakerState().String() }, Token: token, Pprof: cfg.Server.Pprof,
		Config: func() any { return rl.cfg.Load().Redacted() }, Reload: rl.run, LastReload: rl.last.Load, Proxy: proxy}
	if cfg.Redis.Mode == limiter.ModeSentinel {
		parts.Sentinels = clients.SentinelsReachable
	}
	adm, err := admin.New(parts)
	if err != nil {
		return nil, fmt.Errorf("build admin API: %w", err)
	}
	trusted, err := upstream.ParseTrusted(cfg.Server.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("server.trusted_proxies: %w", err)
	}
	gw := gateway.New(gateway.Parts{Tenants: table, Limiter: guard, Proxy: proxy, IDs: upstream.NewIDs(randomHex(4)),
		Trusted: trusted, MaxBodyBytes: cfg.Server.MaxBodyBytes, WriteTimeout: cfg.Server.WriteTimeout, Log: log,
		Tunnel: gateway.TunnelLimits{Idle: cfg.Server.TunnelIdleTimeout, Max: cfg.Server.TunnelMaxDuration,
			Protocols: append([]string{}, cfg.Server.TunnelProtocols...)}}) // empty, not nil: none
	var certs *tlsterm.Store
	if pairs := cfg.Server.TLS.Pairs(); len(pairs) > 0 {
		if certs, err = tlsterm.New(pairs, log); err != nil {
			return nil, fmt.Errorf("server.tls: %w", err)
		}
	}
	return &App{gw: gw, guard: guard, server: NewServer(cfg.Server, gw, adm, certs, log), proxy: proxy, clients: clients,
		redis: redisStore, certs: certs, reload: rl, sync: sync, admin: adm, adminToken: tokenFile, cfg: cfg.Server, log: log}, nil
}

// store is what the application needs of a store: decisions, and the
// admin API's usage and reset.
type store interface {
	degrade.Store
	admin.Limits
}

// newStore builds the store redis.mode names, and its clients (nil for
// the memory store).
func newStore(cfg *config.Config) (store, *limiter.RedisStore, *limiter.Clients, error) {
	if cfg.Redis.Mode == limiter.ModeMemory {
		return limiter.NewMemoryStore(nil), nil, nil, nil
	}
	clients, err := limiter.NewClients(cfg.Redis)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("build Redis clients: %w", err)
	}
	store, err := limiter.NewRedisStore(clients, cfg.RateLimit.Options, cfg.RateLimit.Budget, randomHex(6), nil)
	if err != nil {
		clients.Close()
		return nil, nil, nil, err
	}
	return store, store, clients, nil
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
	bgCtx, stopBackground := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.proxy.Run(bgCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.reload.watch(bgCtx, a.cfg.ConfigReloadInterval)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.watchSecrets(bgCtx, a.cfg.ConfigReloadInterval)
	}()
	if a.certs != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.certs.Run(bgCtx, a.cfg.TLS.ReloadInterval)
		}()
	}
	recorderCtx, stopRecorder := context.WithCancel(context.Background())
	recorderDone := make(chan struct{})
	go func() {
		defer close(recorderDone)
		if a.redis != nil {
			a.redis.Run(recorderCtx) // writes what is queued before it returns
		}
	}()
	a.checkRedis()
	a.syncRegistry()
	if a.sync != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.sync.Run(bgCtx)
		}()
	}
	err := a.server.Serve(ctx, proxyLn, adminLn)
	stopBackground()
	wg.Wait()
	// Decisions past their budget may still be on the wire after the
	// grace: let them finish (and queue their records) before the
	// recorder stops.
	if a.redis != nil && !a.redis.Drain(2*time.Second) {
		a.log.Warn("shutdown: Redis calls still running after 2s; their admissions may not be recorded")
	}
	stopRecorder() // no request can queue a record any more
	<-recorderDone
	if a.clients != nil {
		a.redis.Close()
		a.clients.Close()
	}
	return err
}

// checkRedis logs whether Redis answers at start. The gateway serves
// either way: without Redis, decisions follow the fail mode.
func (a *App) checkRedis() {
	if a.clients == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a.redis.Connect(ctx)
	if err := a.clients.Ping(ctx); err != nil {
		a.log.Warn("Redis does not answer at start; serving by the fail mode until it does", "err", err.Error())
		return
	}
	a.log.Info("Redis answers")
	if err := a.clients.Primary.Info(ctx, "memory").Err(); err != nil {
		a.log.Warn("INFO refused on the primary: decisions cannot be marked degraded while it evicts; allow +info", "err", err.Error())
	}
	switch p := a.redis.EvictionPolicy(ctx); {
	case p == "":
		a.log.Warn("cannot read the primary's maxmemory-policy (CONFIG GET refused); " +
			"decisions are still marked degraded while it evicts, if INFO is allowed")
	case p != "noeviction":
		a.log.Warn("the primary's maxmemory-policy evicts keys under memory pressure, and the limiter's keys, "+
			"which all have a TTL, are the first a volatile-* policy evicts: admissions are forgotten. "+
			"Decisions made while it evicts are marked degraded (reason evicting). "+
			"Use noeviction, on a Redis for the limiter alone", "maxmemory-policy", p)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("BUG: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}
