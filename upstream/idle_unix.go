//go:build unix

package upstream

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/l1gw/l1gw/internal/rawio"
)

// peekConn is a dialed upstream connection that can look at its socket
// without waiting (idleState). Its callback is made once, at the dial,
// and its RawConn is rawio's, so that a look costs one system call and
// no allocation. Its reads and writes are rawio's; ReadFrom, through
// which a streamed request body goes, is the TCPConn's.
type peekConn struct {
	*rawio.Conn
	look  func(fd uintptr) bool
	state connState
	b     [1]byte
	used  bool // a request was written to it: it is pooled, not fresh
}

// peekable wraps a dialed connection for idleState; c as it is when it
// is not TCP.
func peekable(c net.Conn) net.Conn {
	rc, ok := rawio.Wrap(c).(*rawio.Conn)
	if !ok {
		return c
	}
	p := &peekConn{Conn: rc}
	p.look = p.peek
	return p
}

// peek is one non-blocking MSG_PEEK recv of a byte (peekByte), which
// consumes nothing.
func (p *peekConn) peek(fd uintptr) bool {
	n, err := peekByte(fd, &p.b)
	switch {
	case err == syscall.EAGAIN || err == syscall.EINTR:
		p.state = connClean
	case err != nil:
		p.state = connClosed
	case n > 0:
		p.state = connDirty
	default:
		p.state = connClosed // 0 bytes: the upstream closed it
	}
	return true // never wait: this is a look, not a read
}

// idleState looks, without waiting, at what a pooled connection holds
// before a request is written to it: nothing (clean), bytes the upstream
// sent after its last response (a body past its declared length, a
// second response), or its close. Over TLS it looks at the socket, then
// at what crypto/tls has read ahead of it.
func idleState(c net.Conn) connState {
	tc, isTLS := c.(*tls.Conn)
	if isTLS {
		c = tc.NetConn()
	}
	p, ok := c.(*peekConn)
	if !ok {
		return connClean
	}
	if !p.used {
		// Fresh from the dial: nothing can be left on it, and an upstream
		// that closes at once fails the request as it always did (a
		// reset, which counts toward ejection), not the look.
		p.used = true
		return connClean
	}
	err := p.RawConn().Read(p.look)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The last request's read deadline, passed while the connection
		// rested: no look was made. Cleared, and looked again.
		p.SetReadDeadline(time.Time{})
		err = p.RawConn().Read(p.look)
	}
	switch {
	case err != nil:
		return connClosed
	case p.state != connClean || !isTLS:
		return p.state
	}
	// crypto/tls reads ahead: a record that came with the last response
	// is in its buffer, not on the socket. A read whose deadline has
	// passed returns what it holds, or times out at once without a
	// system call (and a timeout does not break a tls.Conn).
	tc.SetReadDeadline(time.Unix(1, 0))
	n, err := tc.Read(p.b[:])
	tc.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case n > 0:
		return connDirty
	case errors.As(err, &ne) && ne.Timeout():
		return connClean
	default:
		return connClosed // close_notify, or a broken record
	}
}
