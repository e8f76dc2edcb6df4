package limiter_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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

// tlsFiles writes a CA and a server certificate for 127.0.0.1 into dir.
func tlsFiles(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, srvKey := newKey(), newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "l1gw test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caTmpl, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server.key", "EC PRIVATE KEY", keyDER)
}

// tlsServer runs redis-server with TLS only, on a free loopback port.
func tlsServer(t *testing.T) (addr, ca string) {
	t.Helper()
	dir := t.TempDir()
	ca, cert, key := tlsFiles(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("redis-server", "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca, "--tls-auth-clients", "no",
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
	return addr, ca
}

func TestTLS(t *testing.T) {
	t.Parallel()
	addr, ca := tlsServer(t)
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
