// Package logsample lets one log line of a kind through per interval and
// counts the ones it holds back, for sources that can log at any rate
// (fasthttp's parse errors, go-redis' dial failures).
package logsample

import (
	"sync"
	"time"
)

// Every lets a line through at most once per interval.
type Every struct {
	interval time.Duration
	mu       sync.Mutex
	last     time.Time
	dropped  int
}

// New returns a sampler of one line per interval.
func New(interval time.Duration) *Every { return &Every{interval: interval} }

// Allow says whether a line may be logged now; when it may, dropped is how
// many were held back since the last one.
func (e *Every) Allow() (dropped int, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if !e.last.IsZero() && now.Sub(e.last) < e.interval {
		e.dropped++
		return 0, false
	}
	dropped, e.dropped, e.last = e.dropped, 0, now
	return dropped, true
}
