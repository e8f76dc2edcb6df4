package limiter_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
)

func TestACLUser(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	if err := srv.Client(t).Do(context.Background(), "ACL", "SETUSER", "l1gw", "on", ">s3cret", "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	r := limiter.Rule{Name: "r", Limit: 10, Window: time.Minute}
	o := redisOptions(limiter.ModeStandalone, srv.Addr())
	o.Username, o.Password = "l1gw", "s3cret"
	s, _ := newRedisStore(t, o, false)
	if d := decideOK(t, s, "acme", r); !d.Allowed {
		t.Fatal("as the ACL user: denied; want allowed")
	}
	o.Password = "wrong"
	bad, _ := newRedisStore(t, o, false)
	if _, err := bad.Decide(context.Background(), limiter.Request{Tenant: "acme", Rules: []limiter.Rule{r}}); err == nil {
		t.Fatal("with a wrong password: no error; want one (degrade turns it into a degraded verdict)")
	}
}

// testCA is a certificate authority of a test's own.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func newTestKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newTestKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, der: der}
}

// issue writes a certificate ca signs for tmpl, and its key, as name.pem
// and name.key in dir.
func (ca *testCA) issue(t *testing.T, dir, name string, tmpl *x509.Certificate) (cert, key string) {
	t.Helper()
	k := newTestKey(t)
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+".key", "EC PRIVATE KEY", keyDER)
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsServer runs redis-server with TLS only, on a free loopback port,
// with a certificate for 127.0.0.1 that ca signs; if clients, it takes
// only clients with a certificate ca signs.
func tlsServer(t *testing.T, ca *testCA, clients bool) (addr, caFile string) {
	t.Helper()
	dir := t.TempDir()
	caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.der)
	cert, key := ca.issue(t, dir, "server", &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	auth := "no"
	if clients {
		auth = "yes"
	}
	cmd := exec.Command("redis-server", "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", caFile, "--tls-auth-clients", auth,
		"--save", "", "--appendonly", "no", "--dir", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server with TLS: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	testkit.Eventually(t, 5*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return fmt.Errorf("redis-server with TLS not listening on %s: %w", addr, err)
		}
		return c.Close()
	})
	return addr, caFile
}

func TestTLS(t *testing.T) {
	t.Parallel()
	addr, ca := tlsServer(t, newTestCA(t, "l1gw test CA"), false)
	r := limiter.Rule{Name: "r", Limit: 10, Window: time.Minute}
	o := redisOptions(limiter.ModeStandalone, addr)
	o.TLS = limiter.TLSOptions{Enabled: true, CAFile: ca}
	s, _ := newRedisStore(t, o, false)
	if d := decideOK(t, s, "acme", r); !d.Allowed {
		t.Fatal("over TLS: denied; want allowed")
	}
	o.TLS = limiter.TLSOptions{Enabled: true} // the system roots do not know the test CA
	untrusted, _ := newRedisStore(t, o, false)
	if _, err := untrusted.Decide(context.Background(), limiter.Request{Tenant: "acme", Rules: []limiter.Rule{r}}); err == nil {
		t.Fatal("TLS without the CA: no error; want a verification failure")
	}
	o.TLS = limiter.TLSOptions{Enabled: true, CAFile: filepath.Join(t.TempDir(), "missing.pem")}
	if _, err := limiter.NewClients(o); err == nil {
		t.Fatal("NewClients with a missing CA file: no error")
	}
}

// TestTLSClientCertificateRotatedInPlace: the client certificate's files
// rewritten while the store runs (a rotation by cert-manager, a mounted
// Secret's update) are what the next connection presents, with no
// restart; a pair rewritten half (a key that does not parse) leaves the
// last good one in use. Redis takes only clients its CA signed: the
// store starts with a certificate another CA signed, and is refused
// until its files hold one Redis' CA signed. The pair was read once, at
// start: a rotated certificate took a restart.
func TestTLSClientCertificateRotatedInPlace(t *testing.T) {
	ca, rogue := newTestCA(t, "l1gw test CA"), newTestCA(t, "another CA")
	addr, caFile := tlsServer(t, ca, true)
	dir := t.TempDir()
	client := func() *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "l1gw"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	}
	certFile, keyFile := rogue.issue(t, dir, "client", client())
	o := redisOptions(limiter.ModeStandalone, addr)
	o.TLS = limiter.TLSOptions{Enabled: true, CAFile: caFile, CertFile: certFile, KeyFile: keyFile}
	s, _ := newRedisStore(t, o, false)
	r := limiter.Rule{Name: "r", Limit: 1000, Window: time.Minute}
	decide := func() error {
		_, err := s.Decide(context.Background(), limiter.Request{Tenant: "acme", Rules: []limiter.Rule{r}})
		return err
	}
	if err := decide(); err == nil {
		t.Fatal("with a certificate Redis' CA did not sign: no error; want the handshake refused")
	}
	loaded, failed := tlsReloads(t, "loaded"), tlsReloads(t, "failed")

	ca.issue(t, dir, "client", client()) // rotated in place
	if err := decide(); err != nil {     // its first dial presents the new pair
		t.Fatalf("the first decision after the rotation: %v; want it through", err)
	}
	if n := tlsReloads(t, "loaded") - loaded; n < 1 {
		t.Errorf(`l1gw_redis_tls_cert_reloads_total{result="loaded"} grew by %d; want 1 or more`, n)
	}

	// Half rotated: the key no longer parses. Every connection closed, the
	// next ones still present the last good pair.
	good, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte("-----BEGIN EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END EC PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	admin := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{good}, MinVersion: tls.VersionTLS12}})
	defer admin.Close()
	if err := admin.Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatalf("CLIENT KILL: %v", err)
	}
	testkit.Eventually(t, 10*time.Second, func() error { return decide() })
	testkit.Eventually(t, 5*time.Second, func() error { // read beside the dials
		if n := tlsReloads(t, "failed") - failed; n < 1 {
			return fmt.Errorf(`l1gw_redis_tls_cert_reloads_total{result="failed"} grew by %d; want 1 or more (the connections made after the kill)`, n)
		}
		return nil
	})
}

// tlsReloads is l1gw_redis_tls_cert_reloads_total{result}.
func tlsReloads(t *testing.T, result string) int {
	t.Helper()
	return resultCount(t, "l1gw_redis_tls_cert_reloads_total", result)
}
