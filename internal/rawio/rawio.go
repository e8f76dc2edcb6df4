// Package rawio gives TCP connections whose reads and writes do not
// enter the Go scheduler's system-call state (on Linux; elsewhere Wrap
// keeps the net package's calls).
//
// A socket of the net package is non-blocking: read(2) and write(2) on it
// return at once, with bytes or EAGAIN, and the wait for readiness is the
// network poller's. Made through syscall.Syscall, each call still tells
// the scheduler it may block (entersyscall), and the first one after the
// process went idle wakes the runtime's monitor thread (sysmon) from its
// deep sleep and sets it polling every 20 µs again (go.dev/issue/18236).
// A gateway that waits on Redis goes idle and busy thousands of times a
// second: by perf under `make bench-compare` at 64 connections, that
// monitor took 8.3% of l1gw-exact's CPU samples (13.3% of the naive
// forwarder's). Through syscall.RawSyscall a call is what it is, a copy
// to or from the socket's buffer; the monitor stays asleep or backs off
// to its 10 ms tick, as in any busy process, and took 0.5%.
//
// What the scheduler no longer does for these calls is hand the P to
// another thread while one is in the kernel. Such a call never sleeps
// waiting for the peer; it holds the P for as long as the kernel copies
// (on loopback, the receiver's processing runs in the sender's write).
//
// Under the race detector Conn makes the net package's own calls: a raw
// one would hide from it the happens-before edge a socket carries from
// a write to the read of it.
package rawio

import (
	"net"
	"syscall"
)

// tcpOf returns c as a *net.TCPConn with its RawConn; ok is false for
// any other connection.
func tcpOf(c net.Conn) (tc *net.TCPConn, rc syscall.RawConn, ok bool) {
	tc, ok = c.(*net.TCPConn)
	if !ok {
		return nil, nil, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, nil, false
	}
	return tc, rc, true
}

// RawConn is the connection's syscall.RawConn, made once by Wrap.
func (c *Conn) RawConn() syscall.RawConn { return c.rc }
