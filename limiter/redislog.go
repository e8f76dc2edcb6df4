package limiter

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// SetRedisLog sends go-redis' own log lines (dial failures, Sentinel
// events) to log as warnings, at most one a second; the lines dropped
// meanwhile are counted in the next. go-redis otherwise writes plain text
// to stderr, into the gateway's JSON log. The setting is process-wide.
func SetRedisLog(log *slog.Logger) {
	redis.SetLogger(&redisLog{log: log, every: time.Second})
}

type redisLog struct {
	log     *slog.Logger
	every   time.Duration
	mu      sync.Mutex
	last    time.Time
	dropped int
}

// Printf implements go-redis' logger.
func (l *redisLog) Printf(_ context.Context, format string, v ...any) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.last) < l.every {
		l.dropped++
		l.mu.Unlock()
		return
	}
	dropped := l.dropped
	l.last, l.dropped = now, 0
	l.mu.Unlock()
	l.log.Warn("go-redis", "line", strings.TrimSpace(fmt.Sprintf(format, v...)), "dropped", dropped)
}
