package upstream_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/l1gw/l1gw/upstream"
)

// TestIsTimeout: a timeout anywhere in the chain counts, past an error
// whose own Timeout says false (a *net.OpError wrapping a wrapped one).
func TestIsTimeout(t *testing.T) {
	deadline := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	wrapped := fmt.Errorf("%w: %w", upstream.ErrClientBody, deadline)
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("reset"), false},
		{deadline, true},
		{wrapped, true},
		{&net.OpError{Op: "readfrom", Net: "tcp4", Err: wrapped}, true},
		{errors.Join(errors.New("a"), deadline), true},
		{&net.OpError{Op: "read", Net: "tcp", Err: errors.New("reset")}, false},
	} {
		if got := upstream.IsTimeout(tc.err); got != tc.want {
			t.Errorf("IsTimeout(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}
