package limiter

import (
	"bytes"
	"crypto/tls"
	"os"
	"sync/atomic"
	"time"

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
// the one it was made with. The files are read beside the dial, which
// waits for them up to certReadWait: a mount that hangs holds up one
// reader, and each dial that long, then presents the pair last read. A
// pair that does not load (a rotation half written) leaves the last good
// one in use, and is read again at the next connection.
type clientCert struct {
	certFile, keyFile string

	cert    atomic.Pointer[tls.Certificate]
	reading flight // the read of the files under way
	// the files as cert was read from: the reader's own
	certPEM, keyPEM []byte
}

// certReadWait is how long a dial waits for the read of the files it
// started, or joined: files on a local or mounted volume read in far
// less; a mount that hangs costs each dial this, then the pair last read.
const certReadWait = 50 * time.Millisecond

// newClientCert returns the reloader of a pair loadTLS read as first.
func newClientCert(certFile, keyFile string, certPEM, keyPEM []byte, first tls.Certificate) *clientCert {
	c := &clientCert{certFile: certFile, keyFile: keyFile, certPEM: certPEM, keyPEM: keyPEM}
	c.cert.Store(&first)
	return c
}

// get is tls.Config.GetClientCertificate: the pair on disk, read beside
// the dial (starting a read, or joining the one under way) for up to
// certReadWait, else the pair last read.
func (c *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c.reading.wait(c.readFiles, certReadWait)
	return c.cert.Load(), nil
}

// readFiles reads both files, and parses them if they changed since cert
// was read from them.
func (c *clientCert) readFiles() {
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
