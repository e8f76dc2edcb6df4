//go:build !linux

package limiter

// socketCounters cannot ask the kernel here: the connection's own counts
// stand in (see conn.counters).
func socketCounters(int) (sent, received uint64, ok bool) { return 0, 0, false }

// socketConnected cannot ask the kernel here.
func socketConnected(int) (connected, ok bool) { return false, false }
