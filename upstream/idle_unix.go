//go:build unix

package upstream

import (
	"crypto/tls"
	"net"
	"syscall"
)

// peekConn is a dialed upstream connection that can look at its socket
// without waiting (idleState). Its raw connection and the callback are
// made once, at the dial, so that a look costs one system call and no
// allocation.
type peekConn struct {
	*net.TCPConn
	raw   syscall.RawConn
	look  func(fd uintptr) bool
	state connState
	b     [1]byte
}

// peekable wraps a dialed connection for idleState; c as it is when it
// is not TCP.
func peekable(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	p := &peekConn{TCPConn: tc, raw: raw}
	p.look = p.peek
	return p
}

// peek is one non-blocking MSG_PEEK recv of a byte, which consumes
// nothing.
func (p *peekConn) peek(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), p.b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
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
// second response), or its close.
func idleState(c net.Conn) connState {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn() // a TLS record here is as unsolicited as plain bytes
	}
	p, ok := c.(*peekConn)
	if !ok {
		return connClean
	}
	if err := p.raw.Read(p.look); err != nil {
		return connClosed
	}
	return p.state
}
