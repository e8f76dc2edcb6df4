package limiter

import (
	"bytes"
	"crypto/tls"
	"os"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

var (
	certsLoaded = metrics.NewCounter(`l1gw_redis_tls_cert_reloads_total{result="loaded"}`)
	certsFailed = metrics.NewCounter(`l1gw_redis_tls_cert_reloads_total{result="failed"}`)
)

// clientCert is the client certificate of redis.tls (cert_file and
// key_file), read again at every new connection: a certificate rotated in
// place (by cert-manager, a mounted Secret's update) is what the
// connections after it present, with no restart. A connection already
// open keeps the one it was made with. The files are read beside the
// dial, never in it: a dial presents the pair last read, and a mount that
// hangs holds up one reader, no dial. A pair that does not load (a
// rotation half written) leaves the last good one in use, and is read
// again at the next connection.
type clientCert struct {
	certFile, keyFile string

	cert    atomic.Pointer[tls.Certificate]
	reading atomic.Bool
	// the files as cert was read from: the reader's own
	certPEM, keyPEM []byte
}

// newClientCert returns the reloader of a pair loadTLS read as first.
func newClientCert(certFile, keyFile string, certPEM, keyPEM []byte, first tls.Certificate) *clientCert {
	c := &clientCert{certFile: certFile, keyFile: keyFile, certPEM: certPEM, keyPEM: keyPEM}
	c.cert.Store(&first)
	return c
}

// get is tls.Config.GetClientCertificate: the pair last read, with a
// read of the files started beside it if none is under way.
func (c *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c.reading.CompareAndSwap(false, true) {
		go c.read()
	}
	return c.cert.Load(), nil
}

// read reads both files, and parses them if they changed since cert was
// read from them.
func (c *clientCert) read() {
	defer c.reading.Store(false)
	certPEM, err := os.ReadFile(c.certFile)
	var keyPEM []byte
	if err == nil {
		keyPEM, err = os.ReadFile(c.keyFile)
	}
	if err != nil {
		certsFailed.Inc()
		return
	}
	if bytes.Equal(certPEM, c.certPEM) && bytes.Equal(keyPEM, c.keyPEM) {
		return
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		certsFailed.Inc()
		return
	}
	c.certPEM, c.keyPEM = certPEM, keyPEM
	c.cert.Store(&cert)
	certsLoaded.Inc()
}
