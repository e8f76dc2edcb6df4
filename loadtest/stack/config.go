package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// The stack's tenants. The k6 scripts and the vegeta targets use the same
// names: keep them in step (loadtest/k6/lib.js, loadtest/vegeta/).
const (
	// Tenants is how many tenants of plan standardPlan the stack serves:
	// tenant t0000 has key stack-key-0000, and so on.
	Tenants = 1000
	// KeyPrefix is the start of every bulk tenant's key.
	KeyPrefix = "stack-key-"
	// AbuserKey is the key of tenant "abuser", on plan smallPlan.
	AbuserKey = "stack-abuser-key"
	// DemoKey is the key of tenant "demo", on plan standardPlan.
	DemoKey = "demo-key"

	standardPlan = "standard"
	smallPlan    = "small"
	masterName   = "mymaster"
)

// The plans' limits, printed by the command and used by the scripts.
const (
	standardPerSecond = 50
	standardPerMinute = 2000
	smallPerSecond    = 10
)

// bulkKey is the key of bulk tenant i.
func bulkKey(i int) string { return fmt.Sprintf("%s%04d", KeyPrefix, i) }

// stackGwConfig is a gateway config of the stack: the load tests' base
// config with a sentinel redis section, tenants.unknown and ratelimit.
// The outer Redis field hides harness.GatewayConfig's in the JSON.
type stackGwConfig struct {
	harness.GatewayConfig
	Redis       stackRedis     `json:"redis"`
	TenantsOpts stackTenants   `json:"tenants"`
	RateLimit   stackRateLimit `json:"ratelimit"`
}

type stackRedis struct {
	Mode       string   `json:"mode"`
	Addrs      []string `json:"addrs"`
	MasterName string   `json:"master_name"`
}

type stackTenants struct {
	Unknown string `json:"unknown"`
}

type stackRateLimit struct {
	ExpectedGateways int `json:"expected_gateways"`
}

// gatewayConfig is the config of one of the two gateways.
func gatewayConfig(proxy, admin, upstream string, sentinels []string) stackGwConfig {
	base := harness.MemoryConfig(upstream)
	base.Server.Listen, base.Server.AdminListen = proxy, admin
	base.Plans = map[string]harness.GatewayPlan{
		standardPlan: {Limits: []harness.GatewayRule{
			{Name: "per_second", Limit: standardPerSecond, Window: "1s"},
			{Name: "per_minute", Limit: standardPerMinute, Window: "1m"},
		}},
		smallPlan: {Limits: []harness.GatewayRule{{Name: "per_second", Limit: smallPerSecond, Window: "1s"}}},
	}
	base.Tenants = make([]harness.GatewayTenant, 0, Tenants+2)
	base.Tenants = append(base.Tenants,
		harness.GatewayTenant{ID: "demo", Plan: standardPlan, Keys: []string{DemoKey}},
		harness.GatewayTenant{ID: "abuser", Plan: smallPlan, Keys: []string{AbuserKey}})
	for i := range Tenants {
		base.Tenants = append(base.Tenants, harness.GatewayTenant{
			ID: fmt.Sprintf("t%04d", i), Plan: standardPlan, Keys: []string{bulkKey(i)}})
	}
	return stackGwConfig{
		GatewayConfig: base,
		Redis:         stackRedis{Mode: "sentinel", Addrs: sentinels, MasterName: masterName},
		TenantsOpts:   stackTenants{Unknown: "reject"},
		RateLimit:     stackRateLimit{ExpectedGateways: 2},
	}
}

// writeJSON writes v as indented JSON (which is YAML too) to path.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeKeys writes every bulk key and its tenant, `KEY TENANT` a line, to
// dir/keys.txt: the KEYS file of the k6 scripts.
func writeKeys(dir string) (string, error) {
	var b strings.Builder
	for i := range Tenants {
		fmt.Fprintf(&b, "%s t%04d\n", bulkKey(i), i)
	}
	path := filepath.Join(dir, "keys.txt")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}
