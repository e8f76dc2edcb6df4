package config_test

import (
	"slices"
	"testing"

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
		{"hot keys only", []string{"upstreams.demo.timeout=3s", "tenants.unknown=anonymous", "tenants.anonymous_plan=free"}, nil},
		{"the key header", []string{"tenants.key_header=X-Key"}, []string{"tenants.key_header"}},
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
