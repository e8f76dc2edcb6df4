package limiter

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/logsample"
)

// TestRedisLogIsJSONAndRateLimited: go-redis' lines become JSON warnings,
// at most one per period, the next telling how many were dropped.
func TestRedisLogIsJSONAndRateLimited(t *testing.T) {
	var buf bytes.Buffer
	l := &redisLog{log: slog.New(slog.NewJSONHandler(&buf, nil)), sample: logsample.New(50 * time.Millisecond)}
	for i := range 5 {
		l.Printf(context.Background(), "redis: dial tcp %d: connection refused\n", i)
	}
	time.Sleep(60 * time.Millisecond)
	l.Printf(context.Background(), "sentinel: new master %q", "mymaster")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q; want 2 (the first, then one after the period)", len(lines), lines)
	}
	var second map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatalf("line %q is not JSON: %v", lines[1], err)
	}
	if second["line"] != `sentinel: new master "mymaster"` || second["dropped"] != float64(4) {
		t.Fatalf("second line %v; want the sentinel line with dropped 4", second)
	}
}
