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
	planName = "load"
	ruleName = "per_second"
)

// tenantKey is the API key of the i-th tenant: key-0, key-1, …
func tenantKey(i int) string { return "key-" + strconv.Itoa(i) }

// scenarioConfig is sc's gateway config: harness.MemoryConfig with sc's
// tenants, each with sc.limit requests per second.
func scenarioConfig(sc scenario, upstreamAddr string) harness.GatewayConfig {
	c := harness.MemoryConfig(upstreamAddr)
	c.Plans = map[string]harness.GatewayPlan{planName: {Limits: []harness.GatewayRule{
		{Name: ruleName, Limit: sc.limit, Window: "1s"},
	}}}
	if sc.upload || sc.download {
		c.Server.ReadTimeout, c.Server.MaxBodyBytes = "120s", 2<<30
		up := c.Upstreams[harness.UpstreamName]
		up.Timeout = "120s"
		c.Upstreams[harness.UpstreamName] = up
	}
	if sc.pressure {
		// Longer than any attack: the gateway holds every connection, the
		// costliest case, rather than closing them at 5 s into a wave of
		// reconnects (see README.md).
		c.Server.ReadTimeout = "150s"
	}
	if sc.reloads {
		// Reloaded through the API only, so each reload is one asked for.
		c.Server.AdminToken, c.Server.ConfigReloadInterval = reloadToken, "0s"
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
