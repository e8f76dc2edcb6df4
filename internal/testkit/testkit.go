// Package testkit is the tests' shared plumbing. Only tests import it.
package testkit

import (
	"errors"
	"testing"
	"time"
)

// pollEvery is how often Eventually asks again.
const pollEvery = 10 * time.Millisecond

// Eventually asks cond every 10 ms until it returns nil, and fails the
// test with cond's last error once timeout has passed: cond says what it
// waits for, and how far things got.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(pollEvery)
	}
}

// Until is Eventually for a condition that says only whether it holds:
// what names it in the failure.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Eventually(t, timeout, func() error {
		if !cond() {
			return errors.New(what)
		}
		return nil
	})
}
