package main

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// heldBody is what each held connection sends: a request without a key
// declaring a 10 MiB body, of which it sends nothing.
const heldBody = "POST /upload HTTP/1.1\r\nHost: l1gw\r\nContent-Length: 10485760\r\n\r\n"

// holdBodies opens n connections to addr (127.0.0.1:port) that each send
// heldBody's headers and nothing more, and returns them; close closes all.
func holdBodies(addr string, n int) (conns []net.Conn, err error) {
	if err := harness.CheckLoopback(addr); err != nil {
		return nil, err
	}
	for range n {
		c, err := dialHeld(addr, 2*time.Second)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("held connection %d of %d: %w", len(conns)+1, n, err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, heldBody); err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("held connection %d of %d: %w", len(conns), n, err)
		}
	}
	return conns, nil
}

// stillOpen counts the connections the gateway has not closed: a read
// that times out (nothing to read, nothing closed) is open.
func stillOpen(conns []net.Conn) int {
	open := 0
	one := make([]byte, 1)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(one); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	return open
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		reset(c)
	}
}

// dialHeld opens a connection to be held. It binds no local address: a
// bind takes its port from the whole ephemeral range before connecting,
// and thousands of held connections a run would soon exhaust it.
func dialHeld(addr string, timeout time.Duration) (net.Conn, error) {
	return (&net.Dialer{Timeout: timeout}).Dial("tcp", addr)
}

// reset closes c with a reset, not a FIN, so that it leaves no socket in
// TIME_WAIT: 10 000 of them a run would hold their ports for 60 s, and the
// next run's dials (the load generator's too) would find none free.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}
