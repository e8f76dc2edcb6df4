//go:build !linux

package rawio

import "net"

// Conn is a *net.TCPConn as it is: raw system calls are for Linux only.
type Conn struct {
	*net.TCPConn
}

// Wrap returns c as a Conn when it is a *net.TCPConn, and c as it is
// otherwise.
func Wrap(c net.Conn) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		return &Conn{TCPConn: tc}
	}
	return c
}
