package limiter

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestErrorKind(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrOverload, ""},
		{fmt.Errorf("decide: %w", ErrTooManyRules), ""},
		{callError(fmt.Errorf("%w: no reply", ErrBudget)), KindBudget},
		{fmt.Errorf("dial: %w", ErrNotPrimary), KindNotPrimary},
		{&CallError{Err: replyError("OOM command not allowed when used memory > 'maxmemory'.")}, KindOOM},
		{replyError("NOREPLICAS Not enough good replicas to write."), KindNoReplicas},
		{replyError("READONLY You can't write against a read only replica."), KindReadOnly},
		{replyError("LOADING Redis is loading the dataset in memory"), KindLoading},
		{replyError("MOVED 3999 127.0.0.1:6381"), KindRedirect},
		{replyError("ERR user_script:1: bad"), KindReply},
		{fmt.Errorf("read from x: %w", io.EOF), KindConnection},
		{errors.New("dial tcp: connection refused"), KindConnection},
	}
	for _, c := range cases {
		if got := ErrorKind(c.err); got != c.want {
			t.Errorf("ErrorKind(%v) = %q; want %q", c.err, got, c.want)
		}
	}
}
