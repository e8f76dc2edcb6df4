// Package tlsterm terminates TLS on the proxy listener: certificates
// chosen by SNI, reloaded when their files change, TLS 1.2 at least, ALPN
// http/1.1.
package tlsterm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Pair is one certificate's files, PEM.
type Pair struct {
	// CertFile holds the certificate chain, leaf first.
	CertFile string `koanf:"cert_file" json:"cert_file"`
	// KeyFile holds its private key.
	KeyFile string `koanf:"key_file" json:"key_file"`
}

// set is the loaded certificates: by DNS name (exact, and "*.suffix" for
// wildcards), and the first one for a client that names none we have.
type set struct {
	byName map[string]*tls.Certificate
	first  *tls.Certificate
	stamp  string // the files' sizes and times when loaded
}

// Store holds the certificates and serves them by SNI; Run reloads them.
type Store struct {
	pairs []Pair
	cur   atomic.Pointer[set]
	log   *slog.Logger
}

// Metrics of the reloads.
var (
	reloads      = metrics.NewCounter(`l1gw_tls_reloads_total{result="ok"}`)
	reloadErrors = metrics.NewCounter(`l1gw_tls_reloads_total{result="error"}`)
)

// New loads every pair; an error names the file.
func New(pairs []Pair, log *slog.Logger) (*Store, error) {
	if len(pairs) == 0 {
		return nil, errors.New("no certificate")
	}
	s := &Store{pairs: pairs, log: log}
	st, err := load(pairs)
	if err != nil {
		return nil, err
	}
	s.cur.Store(st)
	return s, nil
}

// Config is the listener's TLS config: TLS 1.2 at least, ALPN http/1.1,
// the certificate chosen by SNI from the current set.
func (s *Store) Config() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: s.certificate,
	}
}

func (s *Store) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	st := s.cur.Load()
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if c, ok := st.byName[name]; ok {
		return c, nil
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if c, ok := st.byName["*"+name[i:]]; ok {
			return c, nil
		}
	}
	return st.first, nil
}

// Run checks the files every interval until ctx ends, and reloads them all
// when any changed. A set that fails to load is logged and counted; the
// one in use stays.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stamp, err := stampOf(s.pairs)
		if err != nil || stamp == s.cur.Load().stamp {
			continue // a file being replaced: try at the next tick
		}
		st, err := load(s.pairs)
		if err != nil {
			reloadErrors.Inc()
			s.log.Warn("TLS certificates not reloaded; the loaded ones stay", "err", err.Error())
			continue
		}
		s.cur.Store(st)
		reloads.Inc()
		s.log.Info("TLS certificates reloaded", "certificates", len(s.pairs))
	}
}

// load reads every pair and indexes it by its leaf's DNS names.
func load(pairs []Pair) (*set, error) {
	stamp, err := stampOf(pairs)
	if err != nil {
		return nil, err
	}
	st := &set{byName: map[string]*tls.Certificate{}, stamp: stamp}
	for _, p := range pairs {
		c, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s / %s: %w", p.CertFile, p.KeyFile, err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.CertFile, err)
		}
		c.Leaf = leaf
		if st.first == nil {
			st.first = &c
		}
		for _, n := range leaf.DNSNames {
			n = strings.ToLower(n)
			if _, taken := st.byName[n]; !taken { // the first pair naming it wins
				st.byName[n] = &c
			}
		}
	}
	return st, nil
}

// stampOf is the files' sizes and modification times.
func stampOf(pairs []Pair) (string, error) {
	var b strings.Builder
	for _, p := range pairs {
		for _, f := range []string{p.CertFile, p.KeyFile} {
			fi, err := os.Stat(f)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String(), nil
}
