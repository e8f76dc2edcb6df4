package limiter

import "time"

// Redis topologies for RedisOptions.Mode.
const (
	ModeMemory     = "memory"
	ModeStandalone = "standalone"
	ModeSentinel   = "sentinel"
	ModeCluster    = "cluster"
)

// Consistency modes for Options.Consistency.
const (
	ConsistencyExact   = "exact"
	ConsistencyReplica = "replica"
)

// Options is the limiter's part of the ratelimit section of the config.
type Options struct {
	// Consistency is "exact" (one atomic script on the primary per
	// request) or "replica" (decide on the local replica, record on the
	// primary asynchronously). Default "exact".
	Consistency string `koanf:"consistency" json:"consistency"`
	// DenyCache answers requests for a rule known to be full from memory
	// until it has room again. Default true.
	DenyCache bool `koanf:"deny_cache" json:"deny_cache"`
	// KeyPrefix starts every Redis key. Default "l1gw".
	KeyPrefix string `koanf:"key_prefix" json:"key_prefix"`
	// QueueTimeout is the longest a decision waits in the gateway to be
	// sent to Redis; past it the request is shed with 503 (overload), never
	// admitted unchecked. Time in this queue is the gateway's own, not
	// Redis': it never counts against ratelimit.budget. Default 1s.
	QueueTimeout time.Duration `koanf:"queue_timeout" json:"queue_timeout"`
}

// RedisOptions is the redis section of the config: where the shared state
// lives and how to reach it.
type RedisOptions struct {
	// Mode is memory | standalone | sentinel | cluster. Default "memory".
	Mode string `koanf:"mode" json:"mode"`
	// Addrs: standalone, the one address; sentinel, the sentinels;
	// cluster, seed nodes. Default [].
	Addrs []string `koanf:"addrs" json:"addrs"`
	// MasterName is the Sentinel master name. Default "mymaster".
	MasterName string `koanf:"master_name" json:"master_name"`
	// LocalReplicas is the replica to read from (sentinel; one address for
	// now). Empty: a healthy replica Sentinel reports. Default [].
	LocalReplicas []string `koanf:"local_replicas" json:"local_replicas"`
	// Username and Password authenticate to Redis (ACL). Default "".
	Username string `koanf:"username" json:"username"`
	Password string `koanf:"password" json:"password"`
	// PasswordFile holds the password instead (a mounted Secret): read at
	// start, and again when it changes, for the connections dialed after.
	// Default "".
	PasswordFile string `koanf:"password_file" json:"password_file"`
	// SentinelUsername and SentinelPassword authenticate to the
	// sentinels. Default "".
	SentinelUsername string `koanf:"sentinel_username" json:"sentinel_username"`
	SentinelPassword string `koanf:"sentinel_password" json:"sentinel_password"`
	// SentinelPasswordFile holds the sentinels' password instead, read as
	// PasswordFile is. Default "".
	SentinelPasswordFile string `koanf:"sentinel_password_file" json:"sentinel_password_file"`
	// DB is the database number (not in cluster mode). Default 0.
	DB int `koanf:"db" json:"db"`
	// TLS secures every connection to Redis and the sentinels.
	TLS TLSOptions `koanf:"tls" json:"tls"`
	// DialTimeout bounds connecting to a node. Default 500ms.
	DialTimeout time.Duration `koanf:"dial_timeout" json:"dial_timeout"`
	// PoolSize is the connection pool size per node; 0 is go-redis'
	// default (10 per CPU). Default 0.
	PoolSize int `koanf:"pool_size" json:"pool_size"`
	// ReadTimeout and WriteTimeout bound one command on the socket; a
	// decision waits at most ratelimit.budget, and a command past the
	// budget finishes in the background within these. Default 100ms.
	ReadTimeout  time.Duration `koanf:"read_timeout" json:"read_timeout"`
	WriteTimeout time.Duration `koanf:"write_timeout" json:"write_timeout"`
	// PoolTimeout is the longest a command waits for a free connection.
	// Default 20ms.
	PoolTimeout time.Duration `koanf:"pool_timeout" json:"pool_timeout"`
	// MaxRetries is how often go-redis retries a command of its pool that
	// failed on the connection (a pooled connection to a restarted node,
	// READONLY after a failover): usage reads, the recorder, lease
	// releases, the registry. Decisions go over the store's own
	// connections, which send a batch again once on a new connection when
	// a reused one failed before any reply. 0: never. Default 1.
	MaxRetries int `koanf:"max_retries" json:"max_retries"`
	// MinIdleConns keeps this many connections open per node. Default 0:
	// go-redis re-dials idle connections in the background, and during an
	// outage those failed dials lock its pool out (it then answers with the
	// last dial error until a background re-dial, once a second, succeeds),
	// which delayed recovery after a Redis restart by seconds.
	MinIdleConns int `koanf:"min_idle_conns" json:"min_idle_conns"`
	// DecisionConns is how many connections per node carry decisions, each
	// pipelining every decision queued while it waits for the last reply
	// (the pool above serves everything else). Default 2.
	DecisionConns int      `koanf:"decision_conns" json:"decision_conns"`
	secrets       *secrets // the password files' contents (NewClients)
}

// TLSOptions configures TLS to Redis.
type TLSOptions struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `koanf:"enabled" json:"enabled"`
	// CAFile verifies the server; "" uses the system roots.
	CAFile string `koanf:"ca_file" json:"ca_file"`
	// CertFile and KeyFile are the client certificate, for mutual TLS.
	CertFile string `koanf:"cert_file" json:"cert_file"`
	KeyFile  string `koanf:"key_file" json:"key_file"`
	// ServerName overrides the name verified in the server certificate.
	ServerName string `koanf:"server_name" json:"server_name"`
	// InsecureSkipVerify skips verification. Never in production.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify" json:"insecure_skip_verify"`
}
