package config_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/config"
)

func TestRestartKeys(t *testing.T) {
	load := func(sets ...string) *config.Config {
		t.Helper()
		c, err := config.Load(config.Input{Sets: sets})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := load()
	cases := []struct {
		name string
		sets []string
		want []string
	}{
		{"same", nil, nil},
		{"hot keys only", []string{"upstreams.demo.timeout=3s", "tenants.unknown=anonymous", "tenants.anonymous_plan=free", "tenants.anonymous_ipv6_prefix=56"}, nil},
		{"the key header", []string{"tenants.key_header=X-Key"}, []string{"tenants.key_header"}},
		{"the key's other places", []string{"tenants.key_query=user_key", "tenants.key_basic_auth=true", "tenants.hide_key=false"},
			[]string{"tenants.hide_key", "tenants.key_basic_auth", "tenants.key_query"}},
		{"listener", []string{"server.listen=:9999"}, []string{"server.listen"}},
		{"nested and squashed", []string{"server.tls.reload_interval=9s", "ratelimit.budget=20ms", "log.level=debug"},
			[]string{"log.level", "ratelimit.budget", "server.tls.reload_interval"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := config.RestartKeys(base, load(tc.sets...))
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("RestartKeys: got %q; want %q", got, tc.want)
			}
		})
	}
}

// TestRetiringKeysConfig: retiring_keys' times are RFC 3339, the plain
// keys are redacted in /v1/config, and a bad time names its key.
func TestRetiringKeysConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(expires string) string {
		p := dir + "/l1gw.yaml"
		body := `plans: {free: {limits: [{name: per_second, limit: 5, window: 1s}]}}
tenant_list:
  - {id: rot, plan: free, keys: [new-key], retiring_keys: [{key: old-secret, expires_at: ` + expires + `}]}
upstreams: {u: {targets: ["http://127.0.0.1:1"]}}
routes: [{path_prefix: /, upstream: u}]
`
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := config.Load(config.Input{File: write("2030-01-02T03:04:05+01:00")})
	if err != nil {
		t.Fatal(err)
	}
	rk := c.TenantList[0].RetiringKeys[0]
	if want := time.Date(2030, 1, 2, 2, 4, 5, 0, time.UTC); !rk.ExpiresAt.Equal(want) || rk.Key != "old-secret" {
		t.Errorf("got %+v; want old-secret expiring at %s", rk, want)
	}
	if got := c.Redacted().TenantList[0].RetiringKeys[0].Key; got != "<redacted>" {
		t.Errorf("redacted retiring key: got %q", got)
	}
	if c.TenantList[0].RetiringKeys[0].Key != "old-secret" {
		t.Error("Redacted changed the config it copied")
	}
	_, err = config.Load(config.Input{File: write("soon")})
	if err == nil || !strings.Contains(err.Error(), `tenant_list[0].retiring_keys[0].expires_at: got "soon"; want an RFC 3339 time`) {
		t.Errorf("a bad time: got %v; want an error naming tenant_list[0].retiring_keys[0].expires_at", err)
	}
}
