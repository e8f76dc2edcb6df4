package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// T is what a *testing.T does for a command (a chaos scenario, the local
// stack), without the testing package: a redistest.TB. Fatalf ends the
// calling goroutine; the cleanups run last first, however it ended.
type T struct {
	ctx  context.Context
	name string // prefixes log lines and temporary directories
	log  io.Writer

	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

// NewT returns a T named name, logging to log.
func NewT(ctx context.Context, name string, log io.Writer) *T {
	return &T{ctx: ctx, name: name, log: log}
}

// Go runs fn in a goroutine of its own (a Fatalf in it ends only that
// goroutine) and waits for it.
func (t *T) Go(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// Context is the command's context.
func (t *T) Context() context.Context { return t.ctx }

// Helper does nothing: lines are not reported.
func (t *T) Helper() {}

// Cleanup registers f to run when Cleanups is called.
func (t *T) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// TempDir is a new directory, removed by the cleanups.
func (t *T) TempDir() string {
	dir, err := os.MkdirTemp("", "l1gw-"+t.name+"-")
	if err != nil {
		t.Fatalf("temporary directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Logf writes a line to the log.
func (t *T) Logf(format string, args ...any) {
	fmt.Fprintf(t.log, "%s: %s\n", t.name, fmt.Sprintf(format, args...))
}

// Errorf records an error and logs it; the command goes on.
func (t *T) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.mu.Lock()
	t.errs = append(t.errs, msg)
	t.mu.Unlock()
	t.Logf("FAIL %s", msg)
}

// Fatalf records an error and ends the calling goroutine.
func (t *T) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	runtime.Goexit()
}

// Failed says whether an error was recorded.
func (t *T) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.errs) > 0
}

// Errors returns the recorded errors.
func (t *T) Errors() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.errs...)
}

// Cleanups runs the registered cleanups last first, each in a goroutine
// of its own so that one calling Fatalf does not stop the others.
func (t *T) Cleanups() {
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		t.Go(f)
	}
}
