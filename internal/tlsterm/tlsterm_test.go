package tlsterm

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/testkit"
)

// TestBrokenReloadKeepsTheLoadedCertificate: files replaced by something
// that does not load are logged and counted; the certificate in use stays,
// and a good replacement later is taken.
func TestBrokenReloadKeepsTheLoadedCertificate(t *testing.T) {
	ca := testkit.NewCA(t)
	cert, key, first := ca.Issue(t, "a", "a.test")
	s, err := New([]Pair{{CertFile: cert, KeyFile: key}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, 10*time.Millisecond)
	serial := func() int64 {
		c, _ := s.certificate(&tls.ClientHelloInfo{ServerName: "a.test"})
		return c.Leaf.SerialNumber.Int64()
	}
	errs := reloadErrors.Get()
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.Until(t, 5*time.Second, "the failed reload counted", func() bool { return reloadErrors.Get() > errs })
	if got := serial(); got != first {
		t.Fatalf("serving serial %d after a broken reload; want the loaded %d", got, first)
	}
	_, _, second := ca.Issue(t, "a", "a.test")
	testkit.Until(t, 5*time.Second, "the good replacement served", func() bool { return serial() == second })
}

func TestNewNamesTheFile(t *testing.T) {
	_, err := New([]Pair{{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/c.key"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/c.pem") {
		t.Fatalf("got %v; want an error naming the file", err)
	}
}
