//go:build !linux

package limiter

// socketCounters cannot ask the kernel here: the connection's own counts
// stand in (see conn.counters).
func socketCounters(int) (sent, received uint64, ok bool) { return 0, 0, false }

// socketState cannot ask the kernel here.
func socketState(int) (connected, known bool, sent, received uint64, counted bool) {
	return false, false, 0, 0, false
}

// socketUnsent cannot ask the kernel here.
func socketUnsent(int) (n uint32, ok bool) { return 0, false }
