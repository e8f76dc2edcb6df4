package limiter

import (
	"bytes"
	"crypto/tls"
	"os"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

var (
	certsLoaded = metrics.NewCounter(`l1gw_redis_tls_cert_reloads_total{result="loaded"}`)
	certsFailed = metrics.NewCounter(`l1gw_redis_tls_cert_reloads_total{result="failed"}`)
)

// clientCert is the client certificate of redis.tls (cert_file and
// key_file), read again at every new connection: a certificate rotated in
// place (by cert-manager, a mounted Secret's update) is what the next
// connection presents, with no restart. A connection already open keeps
// the one it was made with. A pair that does not load (a rotation half
// written) leaves the last good one in use, and is tried again at the
// next connection. The files are small and a gateway dials seldom.
type clientCert struct {
	certFile, keyFile string

	mu              sync.Mutex
	certPEM, keyPEM []byte // as cert was read from
	cert            *tls.Certificate
}

// newClientCert returns the reloader of a pair loadTLS read as first.
func newClientCert(certFile, keyFile string, certPEM, keyPEM []byte, first tls.Certificate) *clientCert {
	return &clientCert{certFile: certFile, keyFile: keyFile, certPEM: certPEM, keyPEM: keyPEM, cert: &first}
}

// get is tls.Config.GetClientCertificate: the pair on disk, parsed again
// if it changed since it was last read.
func (c *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	certPEM, err := os.ReadFile(c.certFile)
	if err != nil {
		certsFailed.Inc()
		return c.cert, nil
	}
	keyPEM, err := os.ReadFile(c.keyFile)
	if err != nil {
		certsFailed.Inc()
		return c.cert, nil
	}
	if bytes.Equal(certPEM, c.certPEM) && bytes.Equal(keyPEM, c.keyPEM) {
		return c.cert, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		certsFailed.Inc()
		return c.cert, nil
	}
	c.cert, c.certPEM, c.keyPEM = &cert, certPEM, keyPEM
	certsLoaded.Inc()
	return c.cert, nil
}
