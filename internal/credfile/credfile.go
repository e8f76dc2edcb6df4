// Package credfile reads a credential from a file (a mounted Kubernetes
// Secret), and again when the file changes, so that a rotation needs no
// restart.
package credfile

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

// maxSize bounds a credential file: a password or a token, not a file
// mounted there by mistake.
const maxSize = 4096

// File is a credential read from a file. Its value is the file's content
// without surrounding white space (an editor's final newline).
type File struct {
	// Key is the config key that named the file, for errors and logs.
	Key  string
	path string
	val  atomic.Pointer[string]
	mu   sync.Mutex // one Check at a time
	sum  [sha256.Size]byte
	// token: the value goes in an Authorization header, which carries no
	// control character (and so no second line).
	token bool
}

// Open reads the credential in path, named by config key key.
func Open(key, path string) (*File, error) {
	return open(&File{Key: key, path: path})
}

// OpenToken is Open for a bearer token: a value with a control character,
// a second line among them, is refused, at the start as on a change,
// since no Authorization header could carry it and every caller would be
// refused.
func OpenToken(key, path string) (*File, error) {
	return open(&File{Key: key, path: path, token: true})
}

func open(f *File) (*File, error) {
	if _, err := f.Check(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path is the file's path.
func (f *File) Path() string { return f.path }

// Value is the credential as last read.
func (f *File) Value() string { return *f.val.Load() }

// Check reads the file again and takes its value when its content
// changed. A file that cannot be read, or is empty, is an error and the
// value read before stays: a Secret being replaced may be caught between.
func (f *File) Check() (changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := read(f.path)
	if err != nil {
		return false, fmt.Errorf("%s: %w", f.Key, err)
	}
	sum := sha256.Sum256(b)
	if f.val.Load() != nil && sum == f.sum {
		return false, nil
	}
	v := string(bytes.TrimSpace(b))
	if v == "" {
		return false, fmt.Errorf("%s: %s is empty", f.Key, f.path)
	}
	if f.token && strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		// The value is not quoted: it is a secret.
		return false, fmt.Errorf("%s: %s has a control character or more than one line, which no Authorization header can carry", f.Key, f.path)
	}
	f.sum = sum
	f.val.Store(&v)
	return true, nil
}

func read(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxSize {
		return nil, fmt.Errorf("%s is over %d bytes: not a credential", path, maxSize)
	}
	return b, nil
}
