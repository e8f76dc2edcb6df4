//go:build !unix

package upstream

import "net"

// peekable returns c: a non-blocking peek is not available here.
func peekable(c net.Conn) net.Conn { return c }

// idleState is connClean where a non-blocking peek is not available; the
// check of unread bytes at release still applies.
func idleState(net.Conn) connState { return connClean }
