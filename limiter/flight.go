package limiter

import (
	"sync"
	"time"
)

// flight runs a job in the background, one run at a time: a caller while
// one runs joins it rather than start another.
type flight struct {
	mu   sync.Mutex
	done chan struct{} // closed when the run under way ends; nil when none is
}

// wait starts run unless a run is under way, and waits for the one under
// way up to d.
func (f *flight) wait(run func(), d time.Duration) {
	f.mu.Lock()
	done := f.done
	if done == nil {
		done = make(chan struct{})
		f.done = done
		go func() {
			run()
			f.mu.Lock()
			f.done = nil
			f.mu.Unlock()
			close(done)
		}()
	}
	f.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
