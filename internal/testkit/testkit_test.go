package testkit_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/testkit"
)

func TestEventuallyWaitsUntilTheConditionHolds(t *testing.T) {
	n := 0
	testkit.Eventually(t, time.Second, func() error {
		if n++; n < 5 {
			return fmt.Errorf("asked %d times", n)
		}
		return nil
	})
	if n != 5 {
		t.Fatalf("asked %d times; want 5 (until it held)", n)
	}
}

// recorder is a testing.TB that records Fatalf instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(r)
}

func TestEventuallyFailsWithTheLastError(t *testing.T) {
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != r {
				panic(p)
			}
		}()
		testkit.Eventually(r, 30*time.Millisecond, func() error { return errors.New("still 3 of 5") })
	}()
	if r.failed != "not within 30ms: still 3 of 5" {
		t.Fatalf("failure %q; want the timeout and the condition's last error", r.failed)
	}
}
