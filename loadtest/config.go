package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// The gateway config, as the harness writes it.
type (
	gwConfig   = harness.GatewayConfig
	gwServer   = harness.GatewayServer
	gwLog      = harness.GatewayLog
	gwRedis    = harness.GatewayRedis
	gwPlan     = harness.GatewayPlan
	gwRule     = harness.GatewayRule
	gwTenant   = harness.GatewayTenant
	gwUpstream = harness.UpstreamSpec
	gwRoute    = harness.GatewayRoute
)

// Names in the generated config.
const (
	planName     = "load"
	upstreamName = "local"
	ruleName     = "per_second"
)

// tenantKey is the API key of the i-th tenant: key-0, key-1, …
func tenantKey(i int) string { return "key-" + strconv.Itoa(i) }

// scenarioConfig is sc's gateway config: memory store, both listeners on
// a free loopback port (the gateway logs which), one upstream (the
// in-process one at upstreamAddr) and sc's tenants, each with sc.limit
// requests per second.
func scenarioConfig(sc scenario, upstreamAddr string) gwConfig {
	c := gwConfig{
		Server: gwServer{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", ShutdownGrace: "5s"},
		// info: the "serving" line names the ports; warnings are counted.
		Log:   gwLog{Level: "info", Format: "json"},
		Redis: gwRedis{Mode: "memory"},
		Plans: map[string]gwPlan{planName: {Limits: []gwRule{
			{Name: ruleName, Limit: sc.limit, Window: "1s"},
		}}},
		Upstreams: map[string]gwUpstream{upstreamName: {
			Targets: []string{"http://" + upstreamAddr}, Timeout: "5s",
		}},
		Routes: []gwRoute{{PathPrefix: "/", Upstream: upstreamName}},
	}
	c.Tenants = make([]gwTenant, sc.tenants)
	for i := range c.Tenants {
		c.Tenants[i] = gwTenant{ID: "t-" + strconv.Itoa(i), Plan: planName, Keys: []string{tenantKey(i)}}
	}
	return c
}

// writeConfig writes sc's gateway config to dir and returns its path.
func writeConfig(dir string, sc scenario, upstreamAddr string) (string, error) {
	b, err := json.MarshalIndent(scenarioConfig(sc, upstreamAddr), "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode %s config: %w", sc.name, err)
	}
	path := filepath.Join(dir, "l1gw-"+sc.name+".yaml")
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("write %s config: %w", sc.name, err)
	}
	return path, nil
}
