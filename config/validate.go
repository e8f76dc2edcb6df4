package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/internal/configkey"
	"github.com/l1gw/l1gw/internal/credfile"
	"github.com/l1gw/l1gw/internal/tlsterm"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// checker collects validation problems before their source is known.
type checker struct{ errs configkey.Errors }

func (c *checker) fail(path, format string, args ...any) { c.errs.Add(path, format, args...) }

func (c *checker) oneOf(path, got string, want ...string) bool {
	for _, w := range want {
		if got == w {
			return true
		}
	}
	c.fail(path, "got %q; want one of %q", got, want)
	return false
}

// minPollInterval is the shortest a polling interval may be (the config
// file's, the certificates', the registry's, an upstream's health check):
// 1ns was accepted once, and an idle gateway spent a core re-reading its
// config file.
const minPollInterval = 10 * time.Millisecond

// poll checks a polling interval: at least minPollInterval.
func (c *checker) poll(path string, d time.Duration) {
	if d < minPollInterval {
		c.fail(path, "got %s; want at least %s", d, minPollInterval)
	}
}

func (c *checker) positive(path string, d time.Duration) {
	if d <= 0 {
		c.fail(path, "got %s; want > 0", d)
	}
}

// tunnelProtocols checks server.tunnel_protocols: protocol names (RFC
// 9110 tokens, without a version), never h2c, at most 16.
func (c *checker) tunnelProtocols(protos []string) {
	const path = "server.tunnel_protocols"
	if len(protos) > 16 {
		c.fail(path, "got %d protocols; want at most 16", len(protos))
		return
	}
	for i, p := range protos {
		switch {
		case p == "" || strings.IndexFunc(p, func(r rune) bool { return !isTokenChar(r) }) >= 0:
			c.fail(fmt.Sprintf("%s[%d]", path, i), "got %q; want a protocol name, such as websocket", p)
		case strings.EqualFold(p, "h2c"):
			c.fail(fmt.Sprintf("%s[%d]", path, i), "h2c would carry HTTP/2 requests to the upstream past the gateway's limits and the headers it sets")
		}
	}
}

// isTokenChar reports whether r may be in an RFC 9110 token.
func isTokenChar(r rune) bool {
	return r < 0x7f && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}

func (c *checker) notYet(path, value, issue string) {
	c.fail(path, "%q is not supported yet (%s); this build supports only the default", value, issue)
}

func (c *checker) addr(path, a string) {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		c.fail(path, "got %q; want host:port or :port", a)
		return
	}
	// A service name (:http) and an empty port (port 0) are Go's to
	// resolve, as they always were; a number must be a port.
	if n, err := strconv.Atoi(port); err == nil && (n < 0 || n > 65535) {
		c.fail(path, "got %q; want a port from 0 to 65535", a)
	}
}

// samePort reports whether listen addresses a and b would bind the same
// port on a shared address: the same port number, and the same host or
// either one every address (empty, 0.0.0.0, :: or another spelling of
// them). Port 0 is never the same; a service name is compared as written.
func samePort(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil {
		return false
	}
	// A port by its number (08080 is 8080), a service name as written.
	port := func(p string) string {
		if n, err := strconv.Atoi(p); err == nil {
			return strconv.Itoa(n)
		}
		return p
	}
	if pa, pb = port(pa), port(pb); pa != pb || pa == "0" || pa == "" {
		return false
	}
	wild := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || ip != nil && ip.IsUnspecified()
	}
	return ha == hb || wild(ha) || wild(hb)
}

// validate checks every value and cross-reference, collecting all problems.
func (cfg *Config) validate() []error {
	c := &checker{}
	cfg.validateServer(c)
	cfg.validateRedis(c)
	cfg.validateRateLimit(c)
	cfg.validateTenants(c)
	if err := upstream.Validate(cfg.Upstreams, cfg.Routes); err != nil {
		c.errs = append(c.errs, err)
	}
	cfg.validateShared(c)
	for name := range cfg.Upstreams {
		if !configkey.ValidName(name) {
			c.fail("upstreams."+name, "name: %s", configkey.BadName(name))
		}
	}
	return c.errs
}

func (cfg *Config) validateServer(c *checker) {
	s := cfg.Server
	c.credentialFile("server.admin_token", s.AdminToken, s.AdminTokenFile, credfile.OpenToken)
	if strings.IndexFunc(s.AdminToken, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		// Surrounding white space is trimmed at load; a control byte inside
		// no Authorization header can carry, so the admin API would refuse
		// every token. The value is not echoed.
		c.fail("server.admin_token", "has a control character, which no Authorization header can carry: every token would be refused")
	}
	c.addr("server.listen", s.Listen)
	c.addr("server.admin_listen", s.AdminListen)
	if samePort(s.Listen, s.AdminListen) {
		c.fail("server.admin_listen", "same as server.listen; the admin API never shares the proxy port")
	}
	c.positive("server.read_timeout", s.ReadTimeout)
	c.positive("server.write_timeout", s.WriteTimeout)
	c.positive("server.idle_timeout", s.IdleTimeout)
	c.positive("server.tunnel_idle_timeout", s.TunnelIdleTimeout)
	c.positive("server.tunnel_max_duration", s.TunnelMaxDuration)
	c.tunnelProtocols(s.TunnelProtocols)
	if s.ShutdownGrace < 0 {
		c.fail("server.shutdown_grace", "got %s; want >= 0", s.ShutdownGrace)
	}
	if s.ConfigReloadInterval < 0 || s.ConfigReloadInterval > 0 && s.ConfigReloadInterval < minPollInterval {
		c.fail("server.config_reload_interval", "got %s; want 0 (never check) or at least %s", s.ConfigReloadInterval, minPollInterval)
	}
	if s.MaxHeaderBytes < 1024 || s.MaxHeaderBytes > 1<<20 {
		c.fail("server.max_header_bytes", "got %d; want 1024 to 1048576", s.MaxHeaderBytes)
	}
	if s.MaxBodyBytes <= 0 {
		c.fail("server.max_body_bytes", "got %d; want > 0", s.MaxBodyBytes)
	}
	if s.MaxConns <= 0 {
		c.fail("server.max_conns", "got %d; want > 0", s.MaxConns)
	}
	if s.MaxConnsPerIP < 0 {
		c.fail("server.max_conns_per_ip", "got %d; want >= 0 (0 is no cap)", s.MaxConnsPerIP)
	}
	if s.MaxConnsPerIPIPv6Prefix < 1 || s.MaxConnsPerIPIPv6Prefix > 128 {
		c.fail("server.max_conns_per_ip_ipv6_prefix", "got %d; want 1-128 (128: every address on its own)", s.MaxConnsPerIPIPv6Prefix)
	}
	cfg.validateTLS(c)
	if s.TrustForwarded {
		c.fail("server.trust_forwarded", "removed: it trusted every peer; list the proxies in front in server.trusted_proxies (CIDRs)")
	}
	for i, e := range s.TrustedProxies {
		if _, err := upstream.ParseTrusted([]string{e}); err != nil {
			c.fail(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q: want a CIDR (10.0.0.0/8) or an IP address", e)
		}
	}
	c.oneOf("log.level", cfg.Log.Level, "debug", "info", "warn", "error")
	c.oneOf("log.format", cfg.Log.Format, "json", "text")
}

func (cfg *Config) validateTLS(c *checker) {
	t := cfg.Server.TLS
	c.poll("server.tls.reload_interval", t.ReloadInterval)
	if t.CertFile == "" {
		if t.KeyFile != "" || len(t.SNI) > 0 {
			c.fail("server.tls.cert_file", "empty, but server.tls has a key or SNI certificates: set the default certificate too")
		}
		return
	}
	check := func(key string, p tlsterm.Pair) {
		if p.CertFile == "" || p.KeyFile == "" {
			c.fail(key, "want both cert_file and key_file")
			return
		}
		if _, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile); err != nil {
			c.fail(key+".cert_file", "%s with %s: %v", p.CertFile, p.KeyFile, err)
		}
	}
	check("server.tls", tlsterm.Pair{CertFile: t.CertFile, KeyFile: t.KeyFile})
	for i, p := range t.SNI {
		check(fmt.Sprintf("server.tls.sni[%d]", i), p)
	}
}

func (cfg *Config) validateRedis(c *checker) {
	r := cfg.Redis
	c.credentialFile("redis.password", r.Password, r.PasswordFile, credfile.Open)
	c.credentialFile("redis.sentinel_password", r.SentinelPassword, r.SentinelPasswordFile, credfile.Open)
	c.oneOf("redis.mode", r.Mode, limiter.ModeMemory, limiter.ModeStandalone, limiter.ModeSentinel, limiter.ModeCluster)
	if r.Mode != limiter.ModeMemory {
		// Read as the gateway will read them when it builds its Redis
		// clients: a broken file is this config's error, with its key and
		// source, at load and at every reload, not a bare error at start.
		for _, e := range limiter.CheckTLS(r.TLS) {
			c.fail("redis.tls."+e.Key, "%v", e.Err)
		}
	}
	switch r.Mode {
	case limiter.ModeMemory:
		if len(r.Addrs) > 0 {
			c.fail("redis.addrs", "set, but redis.mode is memory: set redis.mode too")
		}
	case limiter.ModeStandalone:
		if len(r.Addrs) != 1 {
			c.fail("redis.addrs", "got %d addresses; standalone mode takes exactly one", len(r.Addrs))
		}
	case limiter.ModeSentinel:
		if len(r.Addrs) == 0 {
			c.fail("redis.addrs", "empty; sentinel mode takes the sentinels' addresses")
		}
		if r.MasterName == "" {
			c.fail("redis.master_name", "empty; sentinel mode needs the master name")
		}
	case limiter.ModeCluster:
		if len(r.Addrs) == 0 {
			c.fail("redis.addrs", "empty; cluster mode takes seed nodes")
		}
		if r.DB != 0 {
			c.fail("redis.db", "got %d; Redis Cluster has only database 0", r.DB)
		}
	}
	if len(r.LocalReplicas) > 0 && r.Mode != limiter.ModeSentinel {
		c.fail("redis.local_replicas", "set, but only sentinel mode reads from listed replicas")
	}
	if len(r.LocalReplicas) > 1 {
		c.notYet("redis.local_replicas", strings.Join(r.LocalReplicas, ","), "reads use one local replica; list only the nearest")
	}
	for i, a := range r.Addrs {
		c.addr(fmt.Sprintf("redis.addrs[%d]", i), a)
	}
	for i, a := range r.LocalReplicas {
		c.addr(fmt.Sprintf("redis.local_replicas[%d]", i), a)
	}
	c.positive("redis.dial_timeout", r.DialTimeout)
	c.positive("redis.read_timeout", r.ReadTimeout)
	c.positive("redis.write_timeout", r.WriteTimeout)
	c.positive("redis.pool_timeout", r.PoolTimeout)
	for key, v := range map[string]int{"redis.pool_size": r.PoolSize, "redis.max_retries": r.MaxRetries, "redis.min_idle_conns": r.MinIdleConns} {
		if v < 0 {
			c.fail(key, "got %d; want >= 0", v)
		}
	}
	if r.DecisionConns < 1 || r.DecisionConns > 64 {
		c.fail("redis.decision_conns", "got %d; want 1 to 64", r.DecisionConns)
	}
	if r.DB < 0 {
		c.fail("redis.db", "got %d; want >= 0", r.DB)
	}
}

func (cfg *Config) validateRateLimit(c *checker) {
	r := cfg.RateLimit
	if c.oneOf("ratelimit.consistency", r.Consistency, limiter.ConsistencyExact, limiter.ConsistencyReplica) &&
		r.Consistency == limiter.ConsistencyReplica && cfg.Redis.Mode == limiter.ModeMemory {
		c.fail("ratelimit.consistency", "replica needs a Redis store; redis.mode is memory")
	}
	c.oneOf("ratelimit.fail_mode", r.FailMode, degrade.FailOpen, degrade.FailClosed, degrade.FailLocal)
	c.positive("ratelimit.budget", r.Budget)
	c.positive("ratelimit.queue_timeout", r.QueueTimeout)
	if r.ExpectedGateways < 1 {
		c.fail("ratelimit.expected_gateways", "got %d; want >= 1", r.ExpectedGateways)
	}
	if r.Breaker.Failures < 1 {
		c.fail("ratelimit.breaker.failures", "got %d; want >= 1", r.Breaker.Failures)
	}
	c.positive("ratelimit.breaker.cooldown", r.Breaker.Cooldown)
	c.positive("ratelimit.breaker.max_cooldown", r.Breaker.MaxCooldown)
	if !configkey.ValidName(r.KeyPrefix) {
		c.fail("ratelimit.key_prefix", "%s", configkey.BadName(r.KeyPrefix))
	}
}

func (cfg *Config) validateTenants(c *checker) {
	t := cfg.Tenants
	if !validHeaderName(t.KeyHeader) {
		c.fail("tenants.key_header", "got %q; want an HTTP header name", t.KeyHeader)
	}
	if t.KeyQuery != "" && !validQueryName(t.KeyQuery) {
		c.fail("tenants.key_query", "got %q; want a query parameter name: 1-64 of A-Z a-z 0-9 - . _ ~, or \"\" for none", t.KeyQuery)
	}
	if c.oneOf("tenants.source", t.Source, tenants.SourceConfig, tenants.SourceRedis, tenants.SourceBoth) && t.Source != tenants.SourceConfig {
		switch {
		case cfg.Redis.Mode == limiter.ModeMemory:
			c.fail("tenants.source", "got %q, but redis.mode is memory: the registry lives in Redis", t.Source)
		case t.Source == tenants.SourceRedis && len(cfg.TenantList) > 0:
			c.fail("tenant_list", "%d tenants, but tenants.source is redis: use both to serve the file's tenants too", len(cfg.TenantList))
		}
	}
	c.poll("tenants.refresh", t.Refresh)
	if t.LeaseTTL < time.Millisecond {
		// Redis counts a lease in µs and expires its set in ms: below a
		// millisecond every lease was gone at once.
		c.fail("tenants.lease_ttl", "got %s; want at least 1ms", t.LeaseTTL)
	}
	if t.Max < 1 {
		c.fail("tenants.max", "got %d; want >= 1", t.Max)
	}
	if t.AnonymousIPv6Prefix < 1 || t.AnonymousIPv6Prefix > 128 {
		c.fail("tenants.anonymous_ipv6_prefix", "got %d; want 1-128 (128: every address on its own)", t.AnonymousIPv6Prefix)
	}
	if t.MetricsMax < 0 {
		c.fail("tenants.metrics_max", "got %d; want >= 0 (0: every tenant its own label)", t.MetricsMax)
	}
	for name := range cfg.Plans {
		if !configkey.ValidName(name) {
			c.fail("plans."+name, "name: %s", configkey.BadName(name))
		}
	}
	err := tenants.Check(t, cfg.Plans, cfg.TenantList, func(name string) bool {
		_, ok := cfg.Upstreams[name]
		return ok
	})
	if err != nil {
		c.errs = append(c.errs, err)
	}
}

// validHeaderName: an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '!' || ch == '#' || ch == '$' || ch == '%' || ch == '&' || ch == '\'' || ch == '*' || ch == '+' || ch == '.' || ch == '^' || ch == '`' || ch == '|' || ch == '~') {
			return false
		}
	}
	return true
}

// validQueryName: 1–64 of RFC 3986's unreserved characters, a name that
// reads the same encoded or not.
func validQueryName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			return false
		}
	}
	return s != ""
}

// credentialFile checks a credential given inline (key) or in a file
// (key_file), not both; the file must read as one (open reads it:
// credfile.OpenToken for a bearer token).
func (c *checker) credentialFile(key, inline, file string, open func(key, path string) (*credfile.File, error)) {
	switch {
	case file == "":
	case inline != "":
		c.fail(key+"_file", "set, and so is %s: give the credential once", key)
	default:
		if _, err := open(key+"_file", file); err != nil {
			c.fail(key+"_file", "%v", strings.TrimPrefix(err.Error(), key+"_file: "))
		}
	}
}

// validateShared checks the upstreams' and routes' shared limits.
func (cfg *Config) validateShared(c *checker) {
	for name, u := range cfg.Upstreams {
		if len(u.Limits) > 0 {
			cfg.sharedRules(c, "upstreams."+name+".limits", u.Limits, limiter.MaxSharedRules, "")
		}
	}
	named := map[string]int{}
	for i, r := range cfg.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		if r.Name != "" {
			if !configkey.ValidName(r.Name) {
				c.fail(path+".name", "%s", configkey.BadName(r.Name))
			} else if j, dup := named[r.Name]; dup {
				c.fail(path+".name", "%q names routes[%d] too; a route's shared limits count under its name, so names are unique", r.Name, j)
			}
			named[r.Name] = i
		}
		if len(r.Limits) == 0 && r.Concurrency == 0 {
			continue
		}
		if r.Name == "" {
			c.fail(path+".name", "required with limits or concurrency: the shared limits count under it")
		}
		if r.Concurrency < 0 || r.Concurrency > tenants.MaxConcurrency {
			c.fail(path+".concurrency", "got %d; want 0 (no cap) to %d", r.Concurrency, tenants.MaxConcurrency)
		}
		room, note := limiter.MaxRouteRules, ""
		if r.Concurrency > 0 {
			room, note = room-1, " (the route's concurrency limit counts as one)"
			for j, l := range r.Limits {
				if l.Name == upstream.RouteConcurrencyRule {
					c.fail(fmt.Sprintf("%s.limits[%d].name", path, j), "%q names the route's concurrency limit; give this rule another name", l.Name)
				}
			}
		}
		cfg.sharedRules(c, path+".limits", r.Limits, room, note)
	}
}

// sharedRules checks the shared limits at path: at most max (note says
// why, if it is less than the usual), and valid rules. Every store decides
// them (Redis Cluster in a call of their own).
func (cfg *Config) sharedRules(c *checker, path string, rules []limiter.Rule, max int, note string) {
	if len(rules) > max {
		c.fail(path, "%d shared limits; at most %d%s", len(rules), max, note)
	}
	if err := tenants.CheckRules(path, rules); err != nil {
		c.errs = append(c.errs, err)
	}
}
