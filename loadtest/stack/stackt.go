package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// stackT is the command's redistest.TB: what a *testing.T does for the
// stack, without the testing package. Fatalf ends the calling goroutine;
// cleanup runs the registered functions last first.
type stackT struct {
	log io.Writer

	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

// Helper does nothing: lines are not reported.
func (t *stackT) Helper() {}

// Cleanup registers f to run when the stack stops.
func (t *stackT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// TempDir is a new directory, removed when the stack stops.
func (t *stackT) TempDir() string {
	dir, err := os.MkdirTemp("", "l1gw-stack-")
	if err != nil {
		t.Fatalf("temporary directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Logf writes a line to the log.
func (t *stackT) Logf(format string, args ...any) {
	fmt.Fprintf(t.log, "stack: %s\n", fmt.Sprintf(format, args...))
}

// Errorf records an error and logs it.
func (t *stackT) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.mu.Lock()
	t.errs = append(t.errs, msg)
	t.mu.Unlock()
	t.Logf("error: %s", msg)
}

// Fatalf records an error and ends the calling goroutine.
func (t *stackT) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	runtime.Goexit()
}

// Failed says whether an error was recorded.
func (t *stackT) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.errs) > 0
}

// errors returns the recorded errors.
func (t *stackT) errors() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.errs...)
}

// cleanup runs the cleanups last first, each in a goroutine of its own so
// that one calling Fatalf does not stop the others.
func (t *stackT) cleanup() {
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
		done := make(chan struct{})
		go func() {
			defer close(done)
			f()
		}()
		<-done
	}
}
