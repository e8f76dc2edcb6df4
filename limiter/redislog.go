package limiter

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/logsample"
)

// SetRedisLog sends go-redis' own log lines (dial failures, Sentinel
// events) to log as warnings, at most one a second; the lines dropped
// meanwhile are counted in the next. go-redis otherwise writes plain text
// to stderr, into the gateway's JSON log. The setting is process-wide.
func SetRedisLog(log *slog.Logger) {
	redis.SetLogger(&redisLog{log: log, sample: logsample.New(time.Second)})
}

type redisLog struct {
	log    *slog.Logger
	sample *logsample.Every
}

// Printf implements go-redis' logger.
func (l *redisLog) Printf(_ context.Context, format string, v ...any) {
	dropped, ok := l.sample.Allow()
	if !ok {
		return
	}
	l.log.Warn("go-redis", "line", strings.TrimSpace(fmt.Sprintf(format, v...)), "dropped", dropped)
}
