package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// scenarioT is the command's T: what a *testing.T does for one scenario
// under go test, without the testing package. Fatalf ends the scenario's
// goroutine; cleanups run last first when it ends, however it ends.
type scenarioT struct {
	ctx  context.Context
	name string
	log  io.Writer

	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

// runScenarioT runs fn as scenario name in a goroutine of its own and
// returns the errors it reported, once it and its cleanups are done.
func runScenarioT(ctx context.Context, name string, log io.Writer, fn func(T)) []string {
	t := &scenarioT{ctx: ctx, name: name, log: log}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer t.runCleanups()
		fn(t)
	}()
	<-done
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.errs
}

// runCleanups runs the cleanups last first, each in a goroutine of its own
// so that one calling Fatalf does not stop the others.
func (t *scenarioT) runCleanups() {
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

// Context is the run's context.
func (t *scenarioT) Context() context.Context { return t.ctx }

// Helper does nothing: lines are not reported.
func (t *scenarioT) Helper() {}

// Cleanup registers f to run when the scenario ends.
func (t *scenarioT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// TempDir is a new directory, removed when the scenario ends.
func (t *scenarioT) TempDir() string {
	dir, err := os.MkdirTemp("", "l1gw-chaos-")
	if err != nil {
		t.Fatalf("temporary directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Logf writes a line to the log.
func (t *scenarioT) Logf(format string, args ...any) {
	fmt.Fprintf(t.log, "%s: %s\n", t.name, fmt.Sprintf(format, args...))
}

// Errorf records an error and logs it; the scenario goes on.
func (t *scenarioT) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.mu.Lock()
	t.errs = append(t.errs, msg)
	t.mu.Unlock()
	t.Logf("FAIL %s", msg)
}

// Fatalf records an error and ends the scenario.
func (t *scenarioT) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	runtime.Goexit()
}

// Failed says whether an error was recorded.
func (t *scenarioT) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.errs) > 0
}
