package limiter

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Clients are the go-redis clients of one topology: Primary takes the
// writes outside decisions (records, releases, resets, the registry);
// Replica serves reads and is the primary itself where the topology has
// no replicas. Decisions go over the store's own connections (pipe.go),
// to the nodes these clients find.
type Clients struct {
	Primary redis.UniversalClient
	Replica redis.UniversalClient

	opts      RedisOptions
	tls       *tls.Config
	sentinels *sentinels // Sentinel mode: where the primary is, for every client of c
}

// ErrNotPrimary is returned by a connection to the primary that reached a
// node whose ROLE is not master (a stale primary coming back, or a replica
// Sentinel has not yet promoted).
var ErrNotPrimary = errors.New("limiter: node is not the primary")

// NewClients builds the clients o describes. It does no I/O: the first
// command dials. Every go-redis default that would let a stall last seconds
// is overridden from o.
func NewClients(o RedisOptions) (*Clients, error) {
	tlsConf, err := tlsConfig(o.TLS)
	if err != nil {
		return nil, err
	}
	if o.secrets, err = openSecrets(o); err != nil {
		return nil, err
	}
	c := &Clients{opts: o, tls: tlsConf}
	switch o.Mode {
	case ModeStandalone:
		if len(o.Addrs) != 1 {
			return nil, fmt.Errorf("redis.addrs: standalone mode takes exactly one address, got %d", len(o.Addrs))
		}
		c.Primary = redis.NewClient(nodeOptions(o, o.Addrs[0], tlsConf))
		c.Replica = c.Primary
	case ModeSentinel:
		// Not go-redis' failover client: with every sentinel down it cannot
		// dial a primary that is up. This one dials where the sentinels
		// last said, checked by ROLE.
		c.sentinels = newSentinels(o, tlsConf)
		po := nodeOptions(o, o.MasterName, tlsConf)
		po.Dialer, po.OnConnect = c.sentinels.dialPrimary, mustBeMaster
		c.Primary = redis.NewClient(po)
		c.Replica = replicaClient(o, tlsConf)
	case ModeCluster:
		c.Primary = redis.NewClusterClient(clusterOptions(o, tlsConf, false))
		c.Replica = redis.NewClusterClient(clusterOptions(o, tlsConf, true))
	default:
		return nil, fmt.Errorf("redis.mode %q has no Redis clients", o.Mode)
	}
	return c, nil
}

// SentinelsReachable is how many sentinels answered the last time they
// were asked; -1 before they ever were, and outside Sentinel mode.
func (c *Clients) SentinelsReachable() int {
	if c.sentinels == nil {
		return -1
	}
	return int(c.sentinels.answered.Load())
}

// Close closes every client.
func (c *Clients) Close() error {
	if c.sentinels != nil {
		c.sentinels.close()
	}
	err := c.Primary.Close()
	if c.Replica != c.Primary {
		err = errors.Join(err, c.Replica.Close())
	}
	return err
}

// Ping checks that the primary and the replica answer.
func (c *Clients) Ping(ctx context.Context) error {
	if err := c.Primary.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping primary: %w", err)
	}
	if err := c.Replica.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping replica: %w", err)
	}
	return nil
}

func nodeOptions(o RedisOptions, addr string, tlsConf *tls.Config) *redis.Options {
	return &redis.Options{
		Addr: addr, Username: o.Username, Password: o.Password, CredentialsProvider: o.credentials(), DB: o.DB, TLSConfig: tlsConf,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolTimeout: o.PoolTimeout, PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns,
		MaxRetries: goRedisRetries(o.MaxRetries), MinRetryBackoff: retryBackoff, MaxRetryBackoff: 4 * retryBackoff,
		DialerRetries: 1, MaxConcurrentDials: 4, ConnMaxIdleTime: connMaxIdle,
	}
}

// connMaxIdle closes pooled connections idle this long, so a burst's
// connections do not stay open for go-redis' default 30 minutes.
const connMaxIdle = time.Minute

// clusterReload is how old the slot map may grow before go-redis reloads
// it (in the background, on the next lookup); go-redis' default is 60 s.
// Every decision looks its tenant's node up, so a failover the cluster
// has made is followed within about this, even while decisions fail.
const clusterReload = 500 * time.Millisecond

// retryBackoff is the first pause before a retried command; go-redis' own
// default (10ms up to 1s) would outlive any decision budget.
const retryBackoff = time.Millisecond

// replicaFailoverOptions are those of go-redis' failover client reading
// from a replica Sentinel reports healthy.
func replicaFailoverOptions(o RedisOptions, tlsConf *tls.Config) *redis.FailoverOptions {
	f := &redis.FailoverOptions{
		MasterName: o.MasterName, SentinelAddrs: o.Addrs,
		// go-redis takes the sentinels' password as a string: a rotated
		// sentinel_password_file reaches these replica reads' sentinel
		// connections at the next restart (the decision path's own
		// sentinel clients take it at once).
		SentinelUsername: o.SentinelUsername, SentinelPassword: o.sentinelPassword(),
		Username: o.Username, Password: o.Password, CredentialsProvider: o.credentials(), DB: o.DB, TLSConfig: tlsConf,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolTimeout: o.PoolTimeout, PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns,
		MaxRetries: goRedisRetries(o.MaxRetries), MinRetryBackoff: retryBackoff, MaxRetryBackoff: 4 * retryBackoff,
		DialerRetries: 1, MaxConcurrentDials: 4, ConnMaxIdleTime: connMaxIdle,
		ReplicaOnly: true,
	}
	return f
}

func clusterOptions(o RedisOptions, tlsConf *tls.Config, readOnly bool) *redis.ClusterOptions {
	return &redis.ClusterOptions{
		Addrs: o.Addrs, Username: o.Username, Password: o.Password, CredentialsProvider: o.credentials(), TLSConfig: tlsConf,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolTimeout: o.PoolTimeout, PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns,
		MaxRetries: goRedisRetries(o.MaxRetries), MinRetryBackoff: retryBackoff, MaxRetryBackoff: 4 * retryBackoff,
		DialerRetries: 1, MaxRedirects: 3, ReadOnly: readOnly, ConnMaxIdleTime: connMaxIdle,
		ClusterStateReloadInterval: clusterReload,
	}
}

// replicaClient reads from the local replica (config allows one), or else
// from a replica Sentinel reports as healthy.
//
// Not by latency: go-redis v9.23's cluster client (which the Sentinel
// replica routing is built on) starts its latency probe before it finishes
// setting up the node's client, a data race the race detector reports on
// the first command. Reads go to a random healthy replica instead; list
// the nearest in local_replicas.
func replicaClient(o RedisOptions, tlsConf *tls.Config) redis.UniversalClient {
	if len(o.LocalReplicas) > 0 {
		return redis.NewClient(nodeOptions(o, o.LocalReplicas[0], tlsConf))
	}
	return redis.NewFailoverClusterClient(replicaFailoverOptions(o, tlsConf))
}

// goRedisRetries maps "0 retries" to go-redis' -1 (its 0 means 3).
func goRedisRetries(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// mustBeMaster refuses a write connection to a node that is not the
// primary.
func mustBeMaster(ctx context.Context, cn *redis.Conn) error {
	role, err := cn.Do(ctx, "ROLE").Slice()
	if err != nil {
		return fmt.Errorf("ROLE: %w", err)
	}
	if len(role) == 0 {
		return fmt.Errorf("ROLE: empty reply")
	}
	switch r, _ := role[0].(string); r {
	case "master":
		return nil
	default:
		return fmt.Errorf("%w: %s says %s", ErrNotPrimary, cn.String(), r)
	}
}

// TLSFileError is a redis.tls file that TLS to Redis cannot use: Key is
// its key under redis.tls (ca_file, cert_file or key_file).
type TLSFileError struct {
	Key string
	Err error
}

// Error names the key: redis.tls.<key>: the cause.
func (e *TLSFileError) Error() string { return "redis.tls." + e.Key + ": " + e.Err.Error() }

// Unwrap is the cause: an *fs.PathError for a file that cannot be read.
func (e *TLSFileError) Unwrap() error { return e.Err }

// CheckTLS reads o's files as NewClients does and returns what is wrong
// with them, one *TLSFileError a key; none when o.Enabled is false (the
// files are not read then) or every file is usable. Config loading calls
// it, so that a broken file is a config error naming its key.
func CheckTLS(o TLSOptions) []*TLSFileError {
	_, errs := loadTLS(o)
	return errs
}

func tlsConfig(o TLSOptions) (*tls.Config, error) {
	c, errs := loadTLS(o)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return c, nil
}

// loadTLS is the TLS config o describes, nil when TLS is off, and the
// problems with its files.
func loadTLS(o TLSOptions) (*tls.Config, []*TLSFileError) {
	if !o.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify} // #nosec G402 -- an explicit, documented operator choice
	var errs []*TLSFileError
	fail := func(key string, err error) { errs = append(errs, &TLSFileError{Key: key, Err: err}) }
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		c.RootCAs = x509.NewCertPool()
		switch {
		case err != nil:
			fail("ca_file", err)
		case !c.RootCAs.AppendCertsFromPEM(pem):
			fail("ca_file", fmt.Errorf("no PEM certificate in %s", o.CAFile))
		}
	}
	switch {
	case o.CertFile == "" && o.KeyFile == "":
	case o.CertFile == "": // on the key that is set, where it was set
		fail("key_file", errors.New("set, but redis.tls.cert_file is empty: a client certificate takes both"))
	case o.KeyFile == "":
		fail("cert_file", errors.New("set, but redis.tls.key_file is empty: a client certificate takes both"))
	default:
		certPEM, err := os.ReadFile(o.CertFile)
		if err != nil {
			fail("cert_file", err)
		}
		keyPEM, kerr := os.ReadFile(o.KeyFile)
		if kerr != nil {
			fail("key_file", kerr)
		}
		if err != nil || kerr != nil {
			break
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		var keyErr error // the key's own fault, when the pair fails
		if err != nil {
			keyErr = parseKey(keyPEM)
		}
		switch {
		case err == nil:
			c.GetClientCertificate = newClientCert(o.CertFile, o.KeyFile, certPEM, keyPEM, cert).get
		case keyErr != nil:
			fail("key_file", fmt.Errorf("%s: %w", o.KeyFile, keyErr))
		default:
			fail("cert_file", fmt.Errorf("%s with %s: %w", o.CertFile, o.KeyFile, err))
		}
	}
	return c, errs
}

// parseKey parses the first private key PEM block of data as crypto/tls
// does (PKCS #1; PKCS #8 of RSA, ECDSA or Ed25519; SEC 1): nil when the
// key is usable, and a pair that still fails is the certificate's fault,
// or the two's.
func parseKey(data []byte) error {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return errors.New("no PEM private key")
		}
		if b.Type != "PRIVATE KEY" && !strings.HasSuffix(b.Type, " PRIVATE KEY") {
			continue
		}
		if _, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
			return nil
		}
		if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
			switch k.(type) {
			case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
				return nil
			}
			return fmt.Errorf("a %T in PKCS #8, which TLS cannot use", k)
		}
		if _, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
			return nil
		}
		return fmt.Errorf("%s block: not a PKCS #1, PKCS #8 or SEC 1 private key", b.Type)
	}
}
