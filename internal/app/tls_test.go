package app

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/internal/tlsterm"
)

// handshake connects to addr over TLS as a client naming serverName and
// returns the connection state, or the error.
func handshake(t *testing.T, addr, serverName string, maxVersion uint16) (tls.ConnectionState, error) {
	t.Helper()
	// The certificate's name is checked by the caller: the default one is
	// served to names it does not hold.
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: serverName, InsecureSkipVerify: true, MaxVersion: maxVersion,
		NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.ConnectionState(), nil
}

// TestTLSTermination: the proxy listener serves the certificate a client
// names by SNI (the default one for other names), TLS 1.2 at least, ALPN
// http/1.1; a request through it reaches the upstream as
// X-Forwarded-Proto: https; a certificate whose files change is served
// anew without a restart.
func TestTLSTermination(t *testing.T) {
	ca := testkit.NewCA(t)
	aCert, aKey, _ := ca.Issue(t, "a", "a.test")
	up, seen := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "server.tls.cert_file="+aCert, "server.tls.key_file="+aKey,
		"server.tls.reload_interval=50ms"))
	for _, tc := range []struct{ name, want string }{{"a.test", "a.test"}, {"other.test", "a.test"}} {
		st, err := handshake(t, gw.proxy, tc.name, 0)
		if err != nil {
			t.Fatalf("handshake as %s: %v", tc.name, err)
		}
		if got := st.PeerCertificates[0].Subject.CommonName; got != tc.want {
			t.Errorf("as %s: certificate of %s; want %s", tc.name, got, tc.want)
		}
		if st.NegotiatedProtocol != "http/1.1" {
			t.Errorf("ALPN %q; want http/1.1", st.NegotiatedProtocol)
		}
	}
	if _, err := handshake(t, gw.proxy, "a.test", tls.VersionTLS11); err == nil {
		t.Error("a TLS 1.1 client was served; want TLS 1.2 at least")
	}
	req, resp := &fasthttp.Request{}, &fasthttp.Response{}
	req.SetRequestURI("https://a.test/tls")
	req.Header.Set("X-API-Key", "bulk-key")
	client := &fasthttp.HostClient{Addr: gw.proxy, IsTLS: true, TLSConfig: &tls.Config{ServerName: "a.test", RootCAs: ca.Pool}}
	if err := client.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("request over TLS: %v, %d; want 200", err, resp.StatusCode())
	}
	if p := string(seen.Last().Header.Peek("X-Forwarded-Proto")); p != "https" {
		t.Errorf("upstream X-Forwarded-Proto %q; want https", p)
	}

	// Rotation: new files under the same names.
	_, _, serial := ca.Issue(t, "a", "a.test")
	testkit.Until(t, 5*time.Second, "the rotated certificate served", func() bool {
		st, err := handshake(t, gw.proxy, "a.test", 0)
		return err == nil && st.PeerCertificates[0].SerialNumber.Int64() == serial
	})
}

// TestTLSBySNI: more certificates, each served to the names it holds,
// wildcards included.
func TestTLSBySNI(t *testing.T) {
	ca := testkit.NewCA(t)
	aCert, aKey, _ := ca.Issue(t, "a", "a.test")
	bCert, bKey, _ := ca.Issue(t, "b", "b.test", "*.b.test")
	up, _ := startUpstream(t)
	cfg := loadConfig(t, up, "server.tls.cert_file="+aCert, "server.tls.key_file="+aKey)
	cfg.Server.TLS.SNI = append(cfg.Server.TLS.SNI, tlsterm.Pair{CertFile: bCert, KeyFile: bKey})
	gw := startApp(t, cfg)
	for _, tc := range []struct{ name, want string }{{"a.test", "a.test"}, {"b.test", "b.test"}, {"x.b.test", "b.test"}, {"B.TEST", "b.test"}, {"nope.test", "a.test"}} {
		st, err := handshake(t, gw.proxy, tc.name, 0)
		if err != nil {
			t.Fatalf("handshake as %s: %v", tc.name, err)
		}
		if got := st.PeerCertificates[0].Subject.CommonName; got != tc.want {
			t.Errorf("as %s: certificate of %s; want %s", tc.name, got, tc.want)
		}
	}
}

// TestHTTPSUpstream: an https:// target is verified against
// upstreams.<name>.tls.ca_file; without it (the system's roots) the
// forward fails, 502.
func TestHTTPSUpstream(t *testing.T) {
	ca := testkit.NewCA(t)
	cert, key, _ := ca.Issue(t, "up", "127.0.0.1")
	ln := testkit.ListenTLS(t, cert, key, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("over tls") })
	gw := startApp(t, loadConfig(t, "https://"+ln, "upstreams.main.tls.ca_file="+ca.File))
	resp := call(t, gw.proxy, "GET", "/", "X-API-Key", "bulk-key")
	if resp.StatusCode() != 200 || string(resp.Body()) != "over tls" {
		t.Fatalf("got %d %q; want 200 over tls", resp.StatusCode(), resp.Body())
	}
	gw2 := startApp(t, loadConfig(t, "https://"+ln))
	if resp := call(t, gw2.proxy, "GET", "/", "X-API-Key", "bulk-key"); resp.StatusCode() != 502 {
		t.Fatalf("without the CA: %d; want 502", resp.StatusCode())
	}
}

// TestTLSRefusalIsNoPlainText: under TLS, a connection past
// max_conns_per_ip is closed without an answer: the plain 429 written
// before the handshake reached TLS clients as a broken one ("first
// record does not look like a TLS handshake"). It is counted as before.
func TestTLSRefusalIsNoPlainText(t *testing.T) {
	ca := testkit.NewCA(t)
	cert, key, _ := ca.Issue(t, "a", "a.test")
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, "server.tls.cert_file="+cert, "server.tls.key_file="+key, "server.max_conns_per_ip=1"))
	first, err := tls.Dial("tcp", gw.proxy, &tls.Config{ServerName: "a.test", RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	before := metricValue(t, gw.admin, `l1gw_connections_rejected_total{reason="max_conns_per_ip"}`)
	second, err := net.Dial("tcp", gw.proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(second); len(b) != 0 || err != nil {
		t.Fatalf("the connection past max_conns_per_ip read %q, %v; want it closed with nothing written", b, err)
	}
	if got := metricValue(t, gw.admin, `l1gw_connections_rejected_total{reason="max_conns_per_ip"}`); got != before+1 {
		t.Fatalf("refusals counted %v, were %v; want one more", got, before)
	}
}
