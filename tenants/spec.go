// Package tenants knows who is calling: the tenant, plan and route model,
// API-key resolution (keys compared as SHA-256 digests) and the live,
// immutable snapshot the request path reads without waiting on anything.
package tenants

import (
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// Unknown-caller policies for Options.Unknown.
const (
	UnknownReject    = "reject"
	UnknownAnonymous = "anonymous"
)

// Where tenants come from (Options.Source); only SourceConfig is built.
const (
	SourceConfig = "config"
	SourceRedis  = "redis"
	SourceBoth   = "both"
)

// Options is the tenants section of the config.
type Options struct {
	// KeyHeader is the request header carrying the API key. Default
	// "X-API-Key". "Authorization: Bearer <key>" is always accepted too.
	KeyHeader string `koanf:"key_header" json:"key_header"`
	// KeyQuery names a query parameter that may carry the API key, as
	// 3scale's user_key. Default "": keys are not read from the query.
	KeyQuery string `koanf:"key_query" json:"key_query"`
	// KeyBasicAuth reads the API key from "Authorization: Basic" too: the
	// password, or the user-id when the password is empty. Default false:
	// Basic credentials are the upstream's.
	KeyBasicAuth bool `koanf:"key_basic_auth" json:"key_basic_auth"`
	// Unknown is what happens to a request without a known key: "reject"
	// (401) or "anonymous" (AnonymousPlan, counted per client IP).
	// Default "reject".
	Unknown string `koanf:"unknown" json:"unknown"`
	// AnonymousPlan is the plan for anonymous callers when Unknown is
	// "anonymous". Default "".
	AnonymousPlan string `koanf:"anonymous_plan" json:"anonymous_plan"`
	// AnonymousIPv6Prefix is how many leading bits of an anonymous IPv6
	// caller's address it is counted by: a network hands each subscriber
	// a /64 at least, so at 64 a caller rotating through its addresses is
	// one caller. 128 counts every address on its own. The config takes
	// 1-128 (default 64); 0, given to this package directly, is 64. IPv4
	// callers are counted by their address.
	AnonymousIPv6Prefix int `koanf:"anonymous_ipv6_prefix" json:"anonymous_ipv6_prefix"`
	// Source is where tenants come from: "config" | "redis" | "both".
	// Default "config".
	Source string `koanf:"source" json:"source"`
	// Refresh is how often a non-config source is re-read. Default 5s.
	Refresh time.Duration `koanf:"refresh" json:"refresh"`
	// HideKey strips the API key before forwarding to the upstream: the
	// key header, the key query parameter, and Authorization when it holds
	// the key. Default true.
	HideKey bool `koanf:"hide_key" json:"hide_key"`
	// Max caps the tenant count; more is a config error. The config
	// takes 1 or more (default 100000); 0, given to this package
	// directly, is no cap.
	Max int `koanf:"max" json:"max"`
	// MetricsMax is how many tenants get a tenant label of their own in
	// metrics, the first in tenant_list order; the others are counted
	// together under OtherID. 0 is no cap. Default 1000.
	MetricsMax int `koanf:"metrics_max" json:"metrics_max"`
	// LeaseTTL is the longest a request holds its lease of a plan's
	// concurrency limit when its gateway never gives it back (the gateway
	// died mid-request): set it above the longest request. Default 60s.
	LeaseTTL time.Duration `koanf:"lease_ttl" json:"lease_ttl"`
}

// RetiringKey is an API key (plain or as its digest, one of the two) and
// the time it stops working.
type RetiringKey struct {
	Key     string `koanf:"key" json:"key,omitempty"`
	KeyHash string `koanf:"key_hash" json:"key_hash,omitempty"`
	// ExpiresAt is when the key stops working (RFC 3339). Required.
	ExpiresAt time.Time `koanf:"expires_at" json:"expires_at"`
}

// Plan is a named set of limits that tenants share the shape of (each
// tenant has its own counts).
type Plan struct {
	// Limits are the plan's rules.
	Limits []limiter.Rule `koanf:"limits" json:"limits"`
	// Concurrency caps each tenant's requests in flight at once, across
	// every gateway (the rule ConcurrencyRule); 0 is no cap. Default 0.
	Concurrency int64 `koanf:"concurrency" json:"concurrency,omitempty"`
}

// ConcurrencyRule names a plan's concurrency limit among a tenant's
// rules: in a 429's violated-policies, in the lease key.
const ConcurrencyRule = "concurrency"

// MaxConcurrency bounds Plan.Concurrency and a route's: a lease set of more members is
// a rate limit's job.
const MaxConcurrency = 100_000

// RouteSpec adds limits for the requests of a tenant that match it.
type RouteSpec struct {
	// Methods the route matches; empty matches every method.
	Methods []string `koanf:"methods" json:"methods"`
	// PathPrefix the request path must start with; empty matches all.
	PathPrefix string `koanf:"path_prefix" json:"path_prefix"`
	// CaseInsensitive matches PathPrefix in any case, for an upstream that
	// serves /V1/x as /v1/x. Default false: paths are case-sensitive.
	CaseInsensitive bool `koanf:"case_insensitive" json:"case_insensitive"`
	// Limits are added to the tenant's limits for matching requests.
	Limits []limiter.Rule `koanf:"limits" json:"limits"`
	// Concurrency caps the tenant's matching requests in flight at once,
	// across every gateway: a concurrency limit named Name; 0 is no cap.
	// Default 0.
	Concurrency int64 `koanf:"concurrency" json:"concurrency,omitempty"`
	// Name names the route's concurrency limit among the tenant's rules
	// (in violated-policies, in its lease key). Required with
	// Concurrency; routes that give the same name and concurrency share
	// one count.
	Name string `koanf:"name" json:"name,omitempty"`
}

// Spec is one tenant as configured.
type Spec struct {
	// ID names the tenant: 1–64 of [A-Za-z0-9_.-]. Required, unique.
	ID string `koanf:"id" json:"id"`
	// Plan names the tenant's plan. Required.
	Plan string `koanf:"plan" json:"plan"`
	// Keys are plain API keys, hashed at load. For development.
	Keys []string `koanf:"keys" json:"keys"`
	// KeyHashes are "sha256:<64 hex>" digests of API keys. For production.
	KeyHashes []string `koanf:"key_hashes" json:"key_hashes"`
	// RetiringKeys are keys that stop working at a time of their own: a
	// rotated key, kept valid while its clients move to the new one.
	RetiringKeys []RetiringKey `koanf:"retiring_keys" json:"retiring_keys,omitempty"`
	// Upstream overrides the route's upstream for this tenant. Default "".
	Upstream string `koanf:"upstream" json:"upstream"`
	// Limits add to the plan's limits; one with a plan limit's name
	// replaces it.
	Limits []limiter.Rule `koanf:"limits" json:"limits"`
	// Routes add limits to the requests that match them.
	Routes []RouteSpec `koanf:"routes" json:"routes"`
}
