//go:build !linux

package rawio

import (
	"net"
	"syscall"
)

// Conn is a *net.TCPConn as it is: raw system calls are for Linux only.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn
}

// Wrap returns c as a Conn when it is a *net.TCPConn, and c as it is
// otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, rc, ok := tcpOf(c)
	if !ok {
		return c
	}
	return &Conn{TCPConn: tc, rc: rc}
}
