// Package config is the configuration contract: the schema, the defaults,
// layered loading (defaults → YAML file → L1GW_* environment → --set flags)
// and validation whose every error names the key and where it came from.
//
// Each part owns its option types (limiter.RedisOptions, tenants.Options,
// upstream.Spec …); this package only assembles and layers them.
package config

import (
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/internal/tlsterm"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// Config is the whole configuration.
type Config struct {
	Server     Server                   `koanf:"server" json:"server"`
	Log        Log                      `koanf:"log" json:"log"`
	Redis      limiter.RedisOptions     `koanf:"redis" json:"redis"`
	RateLimit  RateLimit                `koanf:"ratelimit" json:"ratelimit"`
	Tenants    tenants.Options          `koanf:"tenants" json:"tenants"`
	Plans      map[string]tenants.Plan  `koanf:"plans" json:"plans"`
	TenantList []tenants.Spec           `koanf:"tenant_list" json:"tenant_list"`
	Upstreams  map[string]upstream.Spec `koanf:"upstreams" json:"upstreams"`
	Routes     []upstream.RouteSpec     `koanf:"routes" json:"routes"`
}

// Server is the listeners and their limits.
type Server struct {
	// Listen is the proxy listener. Default ":8080".
	Listen string `koanf:"listen" json:"listen"`
	// AdminListen serves /healthz, /readyz, /metrics and /v1/*; never the
	// proxy port. Default "127.0.0.1:9090".
	AdminListen string `koanf:"admin_listen" json:"admin_listen"`
	// AdminToken is the bearer token of the admin API's /v1/* and
	// /debug/pprof/*; empty refuses them. Default "".
	AdminToken string `koanf:"admin_token" json:"admin_token"`
	// AdminTokenFile holds the admin token instead (a mounted Secret):
	// read at start, and again when it changes. Default "".
	AdminTokenFile string `koanf:"admin_token_file" json:"admin_token_file"`
	// ReadTimeout bounds reading a request, headers and body. Default 5s.
	ReadTimeout time.Duration `koanf:"read_timeout" json:"read_timeout"`
	// WriteTimeout bounds writing a response. Default 30s.
	WriteTimeout time.Duration `koanf:"write_timeout" json:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle this long. Default 90s.
	IdleTimeout time.Duration `koanf:"idle_timeout" json:"idle_timeout"`
	// MaxHeaderBytes caps a request's header block (431 past it).
	// Default 16384.
	MaxHeaderBytes int `koanf:"max_header_bytes" json:"max_header_bytes"`
	// MaxBodyBytes caps a request body (413 past it). Default 10485760.
	MaxBodyBytes int `koanf:"max_body_bytes" json:"max_body_bytes"`
	// MaxConns caps the proxy listener's open connections; one more is
	// answered 503 and closed. Default 50000.
	MaxConns int `koanf:"max_conns" json:"max_conns"`
	// MaxConnsPerIP caps the proxy listener's open connections from one
	// client IP (the peer: behind a proxy, set it on the proxy); one more
	// is answered 429 and closed. 0 is no cap. Default 0.
	MaxConnsPerIP int `koanf:"max_conns_per_ip" json:"max_conns_per_ip"`
	// MaxConnsPerIPIPv6Prefix is how many leading bits of an IPv6 peer's
	// address name one peer for MaxConnsPerIP (the proxy listener's; the
	// admin listener's cap per peer counts a /64): its network of that
	// many bits counts as one, so one
	// host rotating through its network's addresses does not get a
	// fresh cap with each. 128 counts every address on its own. IPv4
	// peers are counted by their address. Default 64.
	MaxConnsPerIPIPv6Prefix int `koanf:"max_conns_per_ip_ipv6_prefix" json:"max_conns_per_ip_ipv6_prefix"`
	// ShutdownGrace is how long in-flight requests may finish after
	// SIGTERM. Default 20s.
	ShutdownGrace time.Duration `koanf:"shutdown_grace" json:"shutdown_grace"`
	// Pprof serves the Go profiler at /debug/pprof/ on the admin listener,
	// behind the admin token. Default false.
	Pprof bool `koanf:"pprof" json:"pprof"`
	// TunnelIdleTimeout closes an upgraded connection (WebSocket) when
	// neither side has sent anything this long. Default 60s.
	TunnelIdleTimeout time.Duration `koanf:"tunnel_idle_timeout" json:"tunnel_idle_timeout"`
	// TunnelMaxDuration closes an upgraded connection this long after it
	// opened. Default 1h.
	TunnelMaxDuration time.Duration `koanf:"tunnel_max_duration" json:"tunnel_max_duration"`
	// TunnelProtocols are the protocols an Upgrade may switch to; an
	// upgrade to none of them is forwarded as a plain request. Never h2c.
	// Default [websocket].
	TunnelProtocols []string `koanf:"tunnel_protocols" json:"tunnel_protocols"`
	// ConfigReloadInterval is how often the config file is checked for a
	// change; changed, it is reloaded as on SIGHUP. 0 checks never.
	// Default 2s.
	ConfigReloadInterval time.Duration `koanf:"config_reload_interval" json:"config_reload_interval"`
	// TLS terminates TLS on the proxy listener when CertFile is set.
	TLS TLS `koanf:"tls" json:"tls"`
	// TrustedProxies are the CIDRs (or addresses) of the proxies in front
	// of l1gw. From one of them, X-Forwarded-Proto/Host are kept, the peer
	// is appended to X-Forwarded-For, and an anonymous client is the
	// rightmost X-Forwarded-For hop that is not itself trusted. Default
	// none: l1gw is the edge.
	TrustedProxies []string `koanf:"trusted_proxies" json:"trusted_proxies"`
	// TrustForwarded was the boolean TrustedProxies replaced: it trusted
	// every peer. Set, it is a config error that says so.
	TrustForwarded bool `koanf:"trust_forwarded" json:"trust_forwarded,omitempty"`
}

// TLS is the proxy listener's TLS: a certificate, more chosen by SNI,
// and how often their files are checked for a change.
type TLS struct {
	// CertFile and KeyFile are the default certificate (PEM); "" serves
	// plain HTTP. Default "".
	CertFile string `koanf:"cert_file" json:"cert_file"`
	KeyFile  string `koanf:"key_file" json:"key_file"`
	// SNI are more certificates, each served to the clients that name one
	// of its DNS names. Default none.
	SNI []tlsterm.Pair `koanf:"sni" json:"sni"`
	// ReloadInterval is how often the files are checked; changed, they are
	// loaded anew without a restart. Default 5s.
	ReloadInterval time.Duration `koanf:"reload_interval" json:"reload_interval"`
}

// Pairs are the certificates, the default first; none without CertFile.
func (t TLS) Pairs() []tlsterm.Pair {
	if t.CertFile == "" {
		return nil
	}
	return append([]tlsterm.Pair{{CertFile: t.CertFile, KeyFile: t.KeyFile}}, t.SNI...)
}

// Log configures logging.
type Log struct {
	// Level is debug | info | warn | error. Default "info".
	Level string `koanf:"level" json:"level"`
	// Format is json | text. Default "json".
	Format string `koanf:"format" json:"format"`
}

// RateLimit is the ratelimit section: the limiter's and degrade's options
// side by side.
type RateLimit struct {
	limiter.Options  `koanf:",squash"`
	degrade.Settings `koanf:",squash"`
}

const redacted = "<redacted>"

// Redacted returns a copy of c with every secret replaced, for display.
func (c *Config) Redacted() *Config {
	r := *c
	hide := func(s *string) {
		if *s != "" {
			*s = redacted
		}
	}
	hide(&r.Server.AdminToken)
	hide(&r.Redis.Password)
	hide(&r.Redis.SentinelPassword)
	r.TenantList = make([]tenants.Spec, len(c.TenantList))
	for i, t := range c.TenantList {
		keys := make([]string, len(t.Keys))
		for j := range keys {
			keys[j] = redacted
		}
		t.Keys = keys
		retiring := make([]tenants.RetiringKey, len(t.RetiringKeys))
		for j, k := range t.RetiringKeys {
			hide(&k.Key)
			retiring[j] = k
		}
		t.RetiringKeys = retiring
		r.TenantList[i] = t
	}
	return &r
}
