package harness

// GatewayConfig is a gateway config in the shape of l1gw's YAML config. A
// runner writes it as JSON, which is YAML too, so every string is quoted
// correctly without a YAML library.
type GatewayConfig struct {
	Server    GatewayServer           `json:"server"`
	Log       GatewayLog              `json:"log"`
	Redis     GatewayRedis            `json:"redis"`
	RateLimit *GatewayRateLimit       `json:"ratelimit,omitempty"`
	Plans     map[string]GatewayPlan  `json:"plans"`
	Tenants   []GatewayTenant         `json:"tenant_list"`
	Upstreams map[string]UpstreamSpec `json:"upstreams"`
	Routes    []GatewayRoute          `json:"routes"`
}

// GatewayServer is the server section: the listeners and the grace.
type GatewayServer struct {
	Listen        string `json:"listen"`
	AdminListen   string `json:"admin_listen"`
	ShutdownGrace string `json:"shutdown_grace"`
	ReadTimeout   string `json:"read_timeout,omitempty"`
	MaxBodyBytes  int64  `json:"max_body_bytes,omitempty"`
	// AdminToken and ConfigReloadInterval are set by the reload scenario.
	AdminToken           string `json:"admin_token,omitempty"`
	ConfigReloadInterval string `json:"config_reload_interval,omitempty"`
}

// GatewayLog is the log section.
type GatewayLog struct {
	Level  string `json:"level"`
	Format string `json:"format"`
}

// GatewayRedis is the redis section.
type GatewayRedis struct {
	Mode  string   `json:"mode"`
	Addrs []string `json:"addrs,omitempty"`
}

// GatewayRateLimit is the part of the ratelimit section a runner sets.
type GatewayRateLimit struct {
	Consistency string `json:"consistency,omitempty"`
}

// GatewayPlan is a plan: its rules.
type GatewayPlan struct {
	Limits []GatewayRule `json:"limits"`
}

// GatewayRule is one limit.
type GatewayRule struct {
	Name      string `json:"name"`
	Limit     int64  `json:"limit"`
	Window    string `json:"window,omitempty"`
	Algorithm string `json:"algorithm,omitempty"`
	Period    string `json:"period,omitempty"`
}

// GatewayTenant is one tenant of tenant_list.
type GatewayTenant struct {
	ID   string   `json:"id"`
	Plan string   `json:"plan"`
	Keys []string `json:"keys"`
}

// UpstreamSpec is one upstream: its targets and timeout.
type UpstreamSpec struct {
	Targets []string `json:"targets"`
	Timeout string   `json:"timeout"`
}

// GatewayRoute sends a path prefix to an upstream.
type GatewayRoute struct {
	PathPrefix string `json:"path_prefix"`
	Upstream   string `json:"upstream"`
}

// MemoryConfig is the runners' base gateway config: the memory store,
// both listeners on a free loopback port (the gateway logs which), a JSON
// log at info (the "serving" line names the ports; warnings are counted),
// and every path routed to the one upstream at upstreamAddr. A runner adds
// its plans and tenants.
func MemoryConfig(upstreamAddr string) GatewayConfig {
	return GatewayConfig{
		Server: GatewayServer{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", ShutdownGrace: "5s"},
		Log:    GatewayLog{Level: "info", Format: "json"},
		Redis:  GatewayRedis{Mode: "memory"},
		Upstreams: map[string]UpstreamSpec{UpstreamName: {
			Targets: []string{"http://" + upstreamAddr}, Timeout: "5s",
		}},
		Routes: []GatewayRoute{{PathPrefix: "/", Upstream: UpstreamName}},
	}
}

// UpstreamName is the one upstream of MemoryConfig.
const UpstreamName = "local"
