package limiter

import "context"

// drain hands what q carries to write, in batches of at most max, until
// ctx ends, then what is still queued. A batch is what was queued when
// its first item came: a burst shares one write, and a lone item waits
// for nothing. The recorder and the lease releases write this way.
func drain[T any](ctx context.Context, q <-chan T, max int, write func([]T)) {
	batch := make([]T, 0, max)
	fill := func(b []T) []T {
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
	for {
		select {
		case v := <-q:
			write(fill(append(batch[:0], v)))
		case <-ctx.Done():
			for {
				b := fill(batch[:0])
				if len(b) == 0 {
					return
				}
				write(b)
			}
		}
	}
}
