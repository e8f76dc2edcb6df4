package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l1gw/l1gw/internal/redistest"
)

// doctorConfig writes a config whose Redis is the standalone node at addr.
func doctorConfig(t *testing.T, dir, name, addr string) string {
	t.Helper()
	file := filepath.Join(dir, name)
	err := os.WriteFile(file, []byte(fmt.Sprintf(`
redis: {mode: standalone, addrs: [%q], read_timeout: 1s, write_timeout: 1s}
ratelimit: {budget: 1s}
plans: {p: {limits: [{name: r, limit: 1, window: 1s}]}}
tenant_list: [{id: t, plan: p, keys: [k]}]
upstreams: {u: {targets: ["http://127.0.0.1:1"]}}
routes: [{upstream: u}]
`, addr)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return file
}

// TestDoctorExitCodes runs l1gw doctor as a real process: 0 with warnings
// only, 1 with an error, 2 for bad usage or a config it cannot use.
func TestDoctorExitCodes(t *testing.T) {
	fine, evicting := redistest.Server(t), redistest.Server(t)
	if err := evicting.Client(t).ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	warnOnly := doctorConfig(t, dir, "fine.yaml", fine.Addr())
	withError := doctorConfig(t, dir, "evicting.yaml", evicting.Addr())
	cases := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"warnings only", []string{"--config", warnOnly}, 0, "warn   appendonly no on " + fine.Addr()},
		{"an error", []string{"--config", withError}, 1, "error  maxmemory-policy allkeys-lru on " + evicting.Addr()},
		{"memory mode", []string{}, 2, "redis.mode is memory"},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, 2, "nope.yaml"},
		{"stray argument", []string{"--config", warnOnly, "extra"}, 2, `unexpected argument "extra"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], append([]string{"doctor"}, tc.args...)...)
			cmd.Env = append(os.Environ(), "L1GWTEST_AS_MAIN=1")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(out.String(), tc.want) {
				t.Fatalf("l1gw doctor %v: exit %d; want %d and output containing %q:\n%s", tc.args, code, tc.wantCode, tc.want, out.String())
			}
		})
	}
}
