// Package upstream forwards admitted requests: pools of upstream targets,
// routing by host and path prefix, hop-by-hop header hygiene,
// X-Forwarded-*, timeouts, retries, health checks, passive ejection and
// load balancing.
package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/l1gw/l1gw/internal/configkey"
	"github.com/l1gw/l1gw/limiter"
)

// Spec is one named upstream.
type Spec struct {
	// Targets are "http://host:port" or "https://host:port" URLs, with no
	// path. Required.
	Targets []string `koanf:"targets" json:"targets"`
	// Timeout bounds one forwarded request, retries included. Default 30s.
	Timeout time.Duration `koanf:"timeout" json:"timeout"`
	// MaxConnsPerTarget caps the connections to each target. Default 1024.
	MaxConnsPerTarget int `koanf:"max_conns_per_target" json:"max_conns_per_target"`
	// Retries is how many other attempts an idempotent request gets when
	// the connection failed before the upstream answered. Default 1.
	Retries int `koanf:"retries" json:"retries"`
	// DialTimeout bounds connecting to a target. Default 2s.
	DialTimeout time.Duration `koanf:"dial_timeout" json:"dial_timeout"`
	// IdleConnTimeout closes pooled connections idle this long; keep it
	// below the upstream's own keep-alive timeout. Default 30s.
	IdleConnTimeout time.Duration `koanf:"idle_conn_timeout" json:"idle_conn_timeout"`
	// MaxResponseBytes caps a response body; 0 means no cap. Default 0.
	MaxResponseBytes int `koanf:"max_response_bytes" json:"max_response_bytes"`
	// Health is the active health check.
	Health HealthSpec `koanf:"health" json:"health"`
	// Eject is passive ejection, beside the health check.
	Eject EjectSpec `koanf:"eject" json:"eject"`
	// TLS is how https:// targets are verified.
	TLS TLSSpec `koanf:"tls" json:"tls"`
	// Limits are shared limits: counted over every tenant's requests to
	// this upstream together, decided with each request's own rules. At
	// most limiter.MaxSharedRules. Default none.
	Limits []limiter.Rule `koanf:"limits" json:"limits"`
}

// TLSSpec verifies https:// targets: TLS 1.2 at least, the certificate
// checked against CAFile (else the system's roots) for ServerName (else the
// target's host).
type TLSSpec struct {
	// CAFile holds the PEM certificates of the CAs to trust. Default "":
	// the system's.
	CAFile string `koanf:"ca_file" json:"ca_file"`
	// ServerName is the name to verify and send as SNI. Default "": the
	// target's host.
	ServerName string `koanf:"server_name" json:"server_name"`
}

// config is the client TLS config of s; nil, nil without anything to set.
func (s TLSSpec) config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate in it", s.CAFile)
		}
	}
	return c, nil
}

// EjectSpec is passive ejection: a target whose connections fail Failures
// times in a row (refused, reset, dial timeout; not a slow answer) gets no
// traffic for Backoff. Readmitted, it is ejected again at its next
// failure, for twice as long, up to 8 × Backoff, until a request to it
// succeeds.
type EjectSpec struct {
	// Failures in a row that eject a target; 0 turns ejection off.
	// Default 5.
	Failures int `koanf:"failures" json:"failures"`
	// Backoff is the first ejection's length. Default 10s.
	Backoff time.Duration `koanf:"backoff" json:"backoff"`
}

// minHealthInterval is the shortest health check interval: every target
// is sent a GET that often.
const minHealthInterval = 10 * time.Millisecond

// HealthSpec is an active health check: GET Path on every target every
// Interval; a target that fails it gets no traffic until it passes again.
type HealthSpec struct {
	// Path to GET; "" disables health checks. Default "/healthz".
	Path string `koanf:"path" json:"path"`
	// Interval between checks. Default 5s.
	Interval time.Duration `koanf:"interval" json:"interval"`
	// Timeout of one check. Default 1s.
	Timeout time.Duration `koanf:"timeout" json:"timeout"`
}

// RouteSpec sends the requests that match Host and PathPrefix to Upstream.
type RouteSpec struct {
	// Host to match, without port; "" matches every host.
	Host string `koanf:"host" json:"host"`
	// PathPrefix the path must start with; "" matches every path.
	PathPrefix string `koanf:"path_prefix" json:"path_prefix"`
	// CaseInsensitive matches PathPrefix in any case. Default false:
	// paths are case-sensitive.
	CaseInsensitive bool `koanf:"case_insensitive" json:"case_insensitive"`
	// Upstream names the upstream. Required.
	Upstream string `koanf:"upstream" json:"upstream"`
	// Name names the route's shared limits (their scope, RouteScope).
	// Required with Limits or Concurrency; unique among routes.
	Name string `koanf:"name" json:"name,omitempty"`
	// Limits are shared limits: counted over every tenant's requests on
	// this route together, decided with each request's own rules.
	// Default none.
	Limits []limiter.Rule `koanf:"limits" json:"limits,omitempty"`
	// Concurrency caps the requests in flight on this route, every
	// tenant's together, across every gateway; 0 is no cap. With Limits,
	// at most limiter.MaxRouteRules. Default 0.
	Concurrency int64 `koanf:"concurrency" json:"concurrency,omitempty"`
	// LeaseTTL is the window of the Concurrency lease: config sets it to
	// tenants.lease_ttl. 0 means a minute.
	LeaseTTL time.Duration `koanf:"-" json:"-"`
}

// Validate checks specs and routes, reporting every problem as a
// *configkey.Error.
func Validate(specs map[string]Spec, routes []RouteSpec) error {
	var errs configkey.Errors
	fail := errs.Add
	names := make([]string, 0, len(specs))
	for name := range specs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s, p := specs[name], "upstreams."+name
		if len(s.Targets) == 0 {
			fail(p+".targets", "no targets")
		}
		for i, t := range s.Targets {
			if _, _, err := parseTarget(t); err != nil {
				fail(fmt.Sprintf("%s.targets[%d]", p, i), "%v", err)
			}
		}
		for _, d := range []struct {
			key string
			v   time.Duration
		}{{"timeout", s.Timeout}, {"dial_timeout", s.DialTimeout}, {"idle_conn_timeout", s.IdleConnTimeout}} {
			if d.v <= 0 {
				fail(p+"."+d.key, "got %s; want > 0", d.v)
			}
		}
		if s.MaxConnsPerTarget <= 0 {
			fail(p+".max_conns_per_target", "got %d; want > 0", s.MaxConnsPerTarget)
		}
		if s.Retries < 0 || s.Retries > 10 {
			fail(p+".retries", "got %d; want 0 to 10", s.Retries)
		}
		if s.MaxResponseBytes < 0 {
			fail(p+".max_response_bytes", "got %d; want >= 0", s.MaxResponseBytes)
		}
		if s.Health.Path != "" && s.Health.Path[0] != '/' {
			fail(p+".health.path", "got %q; want a path starting with / (or empty: no health checks)", s.Health.Path)
		}
		if s.Health.Path != "" && (s.Health.Interval < minHealthInterval || s.Health.Timeout <= 0) {
			fail(p+".health", "got interval %s and timeout %s; with a path, the interval is at least %s and the timeout > 0", s.Health.Interval, s.Health.Timeout, minHealthInterval)
		}
		if _, err := s.TLS.config(); err != nil {
			fail(p+".tls.ca_file", "%v", err)
		}
		if s.Eject.Failures < 0 {
			fail(p+".eject.failures", "got %d; want >= 0 (0 turns ejection off)", s.Eject.Failures)
		}
		if s.Eject.Failures > 0 && s.Eject.Backoff <= 0 {
			fail(p+".eject.backoff", "got %s; want > 0", s.Eject.Backoff)
		}
	}
	if len(routes) == 0 {
		fail("routes", "no routes: nothing would be forwarded")
	}
	for i, r := range routes {
		if _, ok := specs[r.Upstream]; !ok {
			fail(fmt.Sprintf("routes[%d].upstream", i), "unknown upstream %q", r.Upstream)
		}
		if r.PathPrefix != "" && r.PathPrefix[0] != '/' {
			fail(fmt.Sprintf("routes[%d].path_prefix", i), "got %q; want a path starting with / (no request path matches it)", r.PathPrefix)
		}
		if msg := badHost(r.Host); msg != "" {
			fail(fmt.Sprintf("routes[%d].host", i), "got %q; %s", r.Host, msg)
		}
		for j, earlier := range routes[:i] {
			if earlier.shadows(r) {
				fail(fmt.Sprintf("routes[%d]", i), "can never be used: routes[%d], written before it, matches every request it would; write the more specific first", j)
				break
			}
		}
	}
	return errors.Join(errs...)
}

// badHost says what is wrong with a route's host, "" if nothing: a
// request's host is matched without its port, and in a host name's bytes.
func badHost(h string) string {
	if v6, ok := strings.CutPrefix(h, "["); ok {
		if v6, ok = strings.CutSuffix(v6, "]"); ok && strings.Contains(v6, ":") && net.ParseIP(v6) != nil {
			return "" // an IPv6 literal, as a request's Host names one
		}
	}
	switch {
	case h == "":
		return ""
	case strings.ContainsAny(h, ":[]"):
		return "want a host name without a port (a request's port is not matched), or no host to match every one"
	case strings.IndexFunc(h, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_')
	}) >= 0:
		return "want a host name: letters, digits, '-', '_' and '.'"
	}
	return ""
}

// shadows reports whether r, tried before o, matches every request o
// would: the same host (a trailing dot aside, as Match drops it) and the
// same prefix (in any case, when r's is). Routes are tried host first,
// then longest prefix, then as written.
func (r RouteSpec) shadows(o RouteSpec) bool {
	return strings.EqualFold(strings.TrimSuffix(r.Host, "."), strings.TrimSuffix(o.Host, ".")) &&
		(r.PathPrefix == o.PathPrefix && (r.CaseInsensitive || !o.CaseInsensitive) ||
			r.CaseInsensitive && strings.EqualFold(r.PathPrefix, o.PathPrefix))
}

// parseTarget splits a target URL into its dial address and whether it
// uses TLS.
func parseTarget(raw string) (addr string, tls bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		shown := strconv.Quote(raw)
		if strings.Contains(raw, "@") {
			shown = "a URL with credentials" // perhaps a password: errors are logged
		}
		return "", false, fmt.Errorf("got %s; want http://host:port or https://host:port", shown)
	}
	shown := u.Redacted() // no password in an error: it is logged, and answered by /v1/reload
	switch u.Scheme {
	case "http":
	case "https":
		tls = true
	default:
		return "", false, fmt.Errorf("got %q; want an http:// or https:// URL", shown)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false, fmt.Errorf("got %q; want scheme://host:port with no path, query or credentials", shown)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", false, fmt.Errorf("got %q; want a port from 1 to 65535", shown)
		}
	}
	addr = u.Host
	if u.Port() == "" {
		port := "80"
		if tls {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	return addr, tls, nil
}
