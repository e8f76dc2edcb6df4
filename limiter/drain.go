package limiter

import "context"

// drain hands what q carries to write, in batches of at most max, until
// ctx ends, then what is still queued. A batch is what was queued when
// its first item came: a burst shares one write, and a lone item waits
// for nothing. The recorder writes this way; the lease releases too,
// with retries beside (runReleases).
func drain[T any](ctx context.Context, q <-chan T, max int, write func([]T)) {
	batch := make([]T, 0, max)
	for {
		select {
		case v := <-q:
			write(fillBatch(q, append(batch[:0], v), max))
		case <-ctx.Done():
			for {
				b := fillBatch(q, batch[:0], max)
				if len(b) == 0 {
					return
				}
				write(b)
			}
		}
	}
}

// fillBatch appends to b what q holds, without waiting, until b has max items.
func fillBatch[T any](q <-chan T, b []T, max int) []T {
	for len(b) < max {
		select {
		case v := <-q:
			b = append(b, v)
		default:
			return b
		}
	}
	return b
}
