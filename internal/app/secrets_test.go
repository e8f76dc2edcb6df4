package app

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
)

// traffic sends requests through gw until stop is called, and returns
// how many were answered other than 200.
func traffic(t *testing.T, gw *running) (stop func() (sent, failed int64)) {
	t.Helper()
	var sent, failed atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if code, _ := status(t, gw.proxy); code != 200 {
				failed.Add(1)
			}
			sent.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	})
	return func() (int64, int64) {
		close(done)
		wg.Wait()
		return sent.Load(), failed.Load()
	}
}

func writeSecret(t *testing.T, path, value string) {
	t.Helper()
	// As a Secret volume updates: a new file renamed over the old.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestCredentialFilesRotate: the admin token and the Redis password are
// read from files, and a rotation of each is taken while requests flow,
// without a restart and without a failed request. The Redis password is
// rotated as an operator does: the new one added, the file changed, the
// old one removed, every connection cut; the gateway dials again with the
// new one and its decisions are Redis' again.
func TestCredentialFilesRotate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Server(t)
	if err := srv.Client(t).ConfigSet(ctx, "requirepass", "old-pass").Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile, passFile := filepath.Join(dir, "admin-token"), filepath.Join(dir, "redis-password")
	writeSecret(t, tokenFile, "old-token")
	writeSecret(t, passFile, "old-pass")
	up, _ := startUpstream(t)
	gw := startApp(t, loadConfig(t, up, redisSets(srv.Addr(), "ratelimit.budget=1s", "server.config_reload_interval=100ms",
		"server.admin_token_file="+tokenFile, "redis.password_file="+passFile)...))
	stop := traffic(t, gw)

	if code, _ := adminCallToken(t, gw.admin, "old-token"); code != 200 {
		t.Fatalf("the token from the file: %d; want 200", code)
	}
	writeSecret(t, tokenFile, "new-token")
	until(t, "the new admin token works", 5*time.Second, func() bool {
		code, _ := adminCallToken(t, gw.admin, "new-token")
		return code == 200
	})
	if code, _ := adminCallToken(t, gw.admin, "old-token"); code != 401 {
		t.Errorf("the old admin token after the rotation: %d; want 401", code)
	}

	admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "old-pass"})
	defer admin.Close()
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", ">new-pass").Err(); err != nil {
		t.Fatal(err)
	}
	writeSecret(t, passFile, "new-pass")
	time.Sleep(500 * time.Millisecond) // five checks of the file
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "<old-pass").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal").Err(); err != nil {
		t.Fatal(err)
	}
	until(t, "decisions on Redis again after every connection was cut", 10*time.Second, func() bool {
		_, st := status(t, gw.proxy)
		return st == "ok"
	})
	// Under fail_mode open a decision Redis refused is still a 200: this
	// holds the gateway to answering every request across the rotations
	// (no 5xx, no dropped connection); the reload itself is what the wait
	// above holds (it fails without it).
	sent, failed := stop()
	if failed > 0 || sent < 50 {
		t.Errorf("%d of %d requests not answered 200 across the rotations; want none of at least 50", failed, sent)
	}
}

func adminCallToken(t *testing.T, addr, token string) (int, []byte) {
	t.Helper()
	return adminCallWith(t, addr, token, "GET", "/v1/config", "")
}
