package credfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l1gw/l1gw/internal/credfile"
)

func TestFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	write := func(s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := credfile.Open("redis.password_file", p); err == nil || !strings.Contains(err.Error(), "redis.password_file") {
		t.Fatalf("a missing file: %v; want an error naming the key", err)
	}
	write("s3cret\n")
	f, err := credfile.Open("redis.password_file", p)
	if err != nil || f.Value() != "s3cret" {
		t.Fatalf("Open: %q, %v; want s3cret without the newline", f.Value(), err)
	}
	if changed, err := f.Check(); changed || err != nil {
		t.Errorf("Check of an unchanged file: %v, %v; want no change", changed, err)
	}
	write("")
	if changed, err := f.Check(); changed || err == nil || f.Value() != "s3cret" {
		t.Errorf("an emptied file: %v, %v, %q; want an error and the old value", changed, err, f.Value())
	}
	write(strings.Repeat("x", 5000))
	if _, err := f.Check(); err == nil || f.Value() != "s3cret" {
		t.Errorf("a 5000-byte file: %v; want an error and the old value", err)
	}
	write("n3w")
	if changed, err := f.Check(); !changed || err != nil || f.Value() != "n3w" {
		t.Errorf("a changed file: %v, %v, %q; want n3w", changed, err, f.Value())
	}
	os.Remove(p)
	if _, err := f.Check(); err == nil || f.Value() != "n3w" {
		t.Errorf("a removed file: %v; want an error and the value read before", err)
	}
}

// TestToken: a bearer token's file with a control character or a second
// line is refused at the start, and on a change leaves the token read
// before in use; the error does not quote the value.
func TestToken(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	write := func(s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("abc\x01def\n")
	if _, err := credfile.OpenToken("server.admin_token_file", p); err == nil || strings.Contains(err.Error(), "def") {
		t.Fatalf("a control character: %v; want an error that does not quote the token", err)
	}
	if _, err := credfile.Open("redis.password_file", p); err != nil {
		t.Fatalf("the same file as a Redis password: %v; want it read (RESP carries any byte)", err)
	}
	write("good-token\n")
	f, err := credfile.OpenToken("server.admin_token_file", p)
	if err != nil || f.Value() != "good-token" {
		t.Fatalf("OpenToken: %v, %v; want good-token", f, err)
	}
	write("line1\nline2\n")
	if changed, err := f.Check(); changed || err == nil || f.Value() != "good-token" {
		t.Errorf("a second line: %v, %v, %q; want an error and the token read before", changed, err, f.Value())
	}
}
