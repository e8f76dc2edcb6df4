package config_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/internal/testkit"
)

// redisTLS is base with Redis in standalone mode over TLS, with the
// further redis.tls keys and values kv.
func redisTLS(kv ...string) string {
	tls := "enabled: true"
	for i := 0; i+1 < len(kv); i += 2 {
		tls += ", " + kv[i] + ": " + strconv.Quote(kv[i+1])
	}
	return base + "redis:\n  mode: standalone\n  addrs: [\"127.0.0.1:6379\"]\n  tls: {" + tls + "}\n"
}

// wantKeyError checks that err is config.Errors holding one error about
// key, from file, whose message names every one of names.
func wantKeyError(t *testing.T, err error, key, file string, names ...string) {
	t.Helper()
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load: got %v; want config.Errors", err)
	}
	for _, e := range errs {
		if e.Key != key || e.Source != file {
			continue
		}
		for _, n := range names {
			if !strings.Contains(e.Msg, n) {
				t.Fatalf("%s: %q; want it to name %q", key, e.Msg, n)
			}
		}
		return
	}
	t.Fatalf("got errors:\n%v\nwant one with key %q from %s", err, key, file)
}

// TestRedisTLSFilesAreChecked: a redis.tls CA, client certificate or key
// that is missing, unreadable or no PEM of its kind fails Load with an
// error naming its key and the config file, as server.tls's files do, and
// not only later, when the gateway dials Redis. A reload reads them again:
// a CA file broken since the last load fails the next, and the old config
// stays.
func TestRedisTLSFilesAreChecked(t *testing.T) {
	ca := testkit.NewCA(t)
	cert, key, _ := ca.Issue(t, "client", "l1gw")
	otherCert, _, _ := ca.Issue(t, "other", "l1gw")
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badKey := filepath.Join(dir, "bad-key.pem") // a key's PEM block, no key in it
	if err := os.WriteFile(badKey, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An X25519 key in PKCS #8: x509 parses it, crypto/tls cannot sign with it.
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(x25519)
	if err != nil {
		t.Fatal(err)
	}
	xKey := filepath.Join(dir, "x25519-key.pem")
	if err := os.WriteFile(xKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		tls   []string // redis.tls keys and values
		key   string
		names []string // what the message must name
	}{
		{"a missing CA", []string{"ca_file", missing}, "redis.tls.ca_file", []string{missing}},
		{"a CA that is no certificate", []string{"ca_file", garbage}, "redis.tls.ca_file", []string{garbage}},
		{"a directory for a CA", []string{"ca_file", dir}, "redis.tls.ca_file", []string{dir}},
		{"a missing client certificate", []string{"cert_file", missing, "key_file", key}, "redis.tls.cert_file", []string{missing}},
		{"a missing client key", []string{"cert_file", cert, "key_file", missing}, "redis.tls.key_file", []string{missing}},
		{"a client key that is no key", []string{"cert_file", cert, "key_file", garbage}, "redis.tls.key_file", []string{garbage}},
		{"a client key that does not parse", []string{"cert_file", cert, "key_file", badKey}, "redis.tls.key_file", []string{badKey}},
		{"a client key TLS cannot use", []string{"cert_file", cert, "key_file", xKey}, "redis.tls.key_file", []string{xKey, "PKCS #8"}},
		{"a broken certificate and a broken key", []string{"cert_file", garbage, "key_file", badKey}, "redis.tls.key_file", []string{badKey, "not a PKCS #1, PKCS #8 or SEC 1 private key"}},
		{"a certificate that is none", []string{"cert_file", garbage, "key_file", key}, "redis.tls.cert_file", []string{garbage}},
		{"a key of another certificate", []string{"cert_file", otherCert, "key_file", key}, "redis.tls.cert_file", []string{otherCert, key}},
		{"a certificate without its key", []string{"cert_file", cert}, "redis.tls.cert_file", []string{"redis.tls.key_file is empty"}},
		{"a key without its certificate", []string{"key_file", key}, "redis.tls.key_file", []string{"redis.tls.cert_file is empty"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, redisTLS(tc.tls...))
			_, err := config.Load(config.Input{File: file})
			wantKeyError(t, err, tc.key, file, tc.names...)
		})
	}

	t.Run("good files; a broken CA on reload", func(t *testing.T) {
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		pem, err := os.ReadFile(ca.File)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(caFile, pem, 0o600); err != nil {
			t.Fatal(err)
		}
		file := writeFile(t, redisTLS("ca_file", caFile, "cert_file", cert, "key_file", key))
		if _, err := config.Load(config.Input{File: file}); err != nil {
			t.Fatalf("Load with good files: %v", err)
		}
		if err := os.WriteFile(caFile, []byte("-----BEGIN CERTIFICATE-----\ntruncated"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = config.Load(config.Input{File: file})
		wantKeyError(t, err, "redis.tls.ca_file", file, caFile)
	})

	t.Run("from the environment", func(t *testing.T) {
		file := writeFile(t, redisTLS("server_name", "redis"))
		_, err := config.Load(config.Input{File: file, Environ: []string{"L1GW_REDIS__TLS__CA_FILE=" + missing}})
		wantKeyError(t, err, "redis.tls.ca_file", "env L1GW_REDIS__TLS__CA_FILE", missing)
	})
}
