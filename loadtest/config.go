package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
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
func scenarioConfig(sc scenario, upstreamAddr string) harness.GatewayConfig {
	c := harness.GatewayConfig{
		Server: harness.GatewayServer{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", ShutdownGrace: "5s"},
		// info: the "serving" line names the ports; warnings are counted.
		Log:   harness.GatewayLog{Level: "info", Format: "json"},
		Redis: harness.GatewayRedis{Mode: "memory"},
		Plans: map[string]harness.GatewayPlan{planName: {Limits: []harness.GatewayRule{
			{Name: ruleName, Limit: sc.limit, Window: "1s"},
		}}},
		Upstreams: map[string]harness.UpstreamSpec{upstreamName: {
			Targets: []string{"http://" + upstreamAddr}, Timeout: "5s",
		}},
		Routes: []harness.GatewayRoute{{PathPrefix: "/", Upstream: upstreamName}},
	}
	c.Tenants = make([]harness.GatewayTenant, sc.tenants)
	for i := range c.Tenants {
		c.Tenants[i] = harness.GatewayTenant{ID: "t-" + strconv.Itoa(i), Plan: planName, Keys: []string{tenantKey(i)}}
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
