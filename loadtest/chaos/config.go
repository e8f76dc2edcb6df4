package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// waitDecidingOK polls the gateway until a request is decided by Redis
// (X-RateLimit-Status: ok), so the attack starts on a warm gateway.
func waitDecidingOK(t T, proxy string, within time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+proxy+bulkPath, nil)
		req.Header.Set("X-Api-Key", chaosKey(bulkTenant))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if last = resp.Header.Get("X-Ratelimit-Status"); last == "ok" {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("gateway not deciding with Redis within %v: last X-RateLimit-Status %q", within, last)
}

// The gateway config of a chaos scenario: the load-test config (ports,
// log, upstream, routes) with the chaos tenants and a redis and ratelimit
// section. The outer Redis field hides harness.GatewayConfig's in the JSON.
type chaosGwConfig struct {
	harness.GatewayConfig
	Redis     chaosRedis     `json:"redis"`
	RateLimit chaosRateLimit `json:"ratelimit"`
}

type chaosRedis struct {
	Mode          string   `json:"mode"`
	Addrs         []string `json:"addrs"`
	MasterName    string   `json:"master_name,omitempty"`
	LocalReplicas []string `json:"local_replicas,omitempty"`
}

type chaosRateLimit struct {
	FailMode         string `json:"fail_mode,omitempty"`
	Consistency      string `json:"consistency,omitempty"`
	ExpectedGateways int    `json:"expected_gateways"`
	Budget           string `json:"budget,omitempty"`
}

// writeChaosConfig writes sc's gateway config into a temporary directory
// and returns its path.
func writeChaosConfig(t T, sc chaosScenario, rc chaosRedis, env chaosEnv) string {
	t.Helper()
	base := harness.MemoryConfig(env.upstream)
	base.Plans = map[string]harness.GatewayPlan{
		bulkTenant:    {Limits: []harness.GatewayRule{{Name: chaosRule, Limit: bulkLimit, Window: chaosWindow.String()}}},
		limitedTenant: {Limits: []harness.GatewayRule{{Name: chaosRule, Limit: int64(env.tm.limit()), Window: chaosWindow.String()}}},
	}
	base.Tenants = []harness.GatewayTenant{
		{ID: bulkTenant, Plan: bulkTenant, Keys: []string{chaosKey(bulkTenant)}},
		{ID: limitedTenant, Plan: limitedTenant, Keys: []string{chaosKey(limitedTenant)}},
		{ID: floodTenant, Plan: bulkTenant, Keys: []string{chaosKey(floodTenant)}},
	}
	c := chaosGwConfig{GatewayConfig: base, Redis: rc,
		RateLimit: chaosRateLimit{FailMode: sc.failMode, Consistency: sc.consistency, ExpectedGateways: 1}}
	if env.tm.budget > 0 {
		c.RateLimit.Budget = env.tm.budget.String()
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatalf("encode %s config: %v", sc.name, err)
	}
	path := filepath.Join(t.TempDir(), "l1gw-chaos-"+sc.name+".yaml")
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		t.Fatalf("write %s config: %v", sc.name, err)
	}
	return path
}
