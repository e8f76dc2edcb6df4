package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// gatewayConfig is the config of one gateway system: harness.MemoryConfig
// with a bench tenant for each of keys (see benchKeys) and the limited
// tenant, their rules of algorithm (sliding_log, sliding_window, or
// fixed: a monthly quota). redisAddr is empty for the memory store;
// consistency is exact or replica.
func gatewayConfig(upstreamAddr, redisAddr, consistency string, limitedLimit int64, algorithm string, keys []string) harness.GatewayConfig {
	c := harness.MemoryConfig(upstreamAddr)
	bench := harness.GatewayRule{Name: "rule", Limit: benchLimit, Window: benchWindow.String(), Algorithm: algorithm}
	limited := harness.GatewayRule{Name: "rule", Limit: limitedLimit, Window: limitedWindow.String(), Algorithm: algorithm}
	if algorithm == "fixed" {
		bench.Window, bench.Period = "", "month"
		limited.Window, limited.Period = "", "month"
	}
	c.Plans = map[string]harness.GatewayPlan{
		"bench":   {Limits: []harness.GatewayRule{bench}},
		"limited": {Limits: []harness.GatewayRule{limited}},
	}
	c.Tenants = nil
	for i, k := range keys {
		id := "bench"
		if len(keys) > 1 {
			id += "-" + strconv.Itoa(i)
		}
		c.Tenants = append(c.Tenants, harness.GatewayTenant{ID: id, Plan: "bench", Keys: []string{k}})
	}
	c.Tenants = append(c.Tenants, harness.GatewayTenant{ID: "limited", Plan: "limited", Keys: []string{limitedKey}})
	if redisAddr != "" {
		c.Redis = harness.GatewayRedis{Mode: "standalone", Addrs: []string{redisAddr}}
		c.RateLimit = &harness.GatewayRateLimit{Consistency: consistency}
	}
	return c
}

// writeGatewayConfig writes c to dir/name.yaml and returns its path.
func writeGatewayConfig(dir, name string, c harness.GatewayConfig) (string, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode %s config: %w", name, err)
	}
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("write %s config: %w", name, err)
	}
	return path, nil
}

// servingLine is the part of the gateway's "serving" log line read here.
type servingLine struct {
	Msg   string `json:"msg"`
	Proxy string `json:"proxy"`
	Admin string `json:"admin"`
}

// matchServing finds the gateway's "serving" JSON log line and returns
// "proxy admin".
func matchServing(line string) (string, bool) {
	var ln servingLine
	if json.Unmarshal([]byte(line), &ln) != nil || ln.Msg != "serving" {
		return "", false
	}
	return ln.Proxy + " " + ln.Admin, true
}

// startGateway runs `bin serve --config cfgPath` on cpu and returns it with
// its proxy address once it has named its ports and answers GET /readyz
// with 200 on its admin port.
func startGateway(ctx context.Context, bin, cfgPath string, cpu int) (*child, string, error) {
	c, found, err := startChild("gateway", exec.Command(bin, "serve", "--config", cfgPath), cpu, matchServing)
	if err != nil {
		return nil, "", fmt.Errorf("%w (built with make build?)", err)
	}
	v, err := c.await(ctx, found)
	if err != nil {
		return nil, "", errors.Join(err, c.stop())
	}
	var proxy, admin string
	if _, err := fmt.Sscan(v, &proxy, &admin); err != nil {
		return nil, "", errors.Join(fmt.Errorf("gateway serving line %q: %w", v, err), c.stop())
	}
	for _, a := range []string{proxy, admin} {
		if err := harness.CheckLoopback(a); err != nil {
			return nil, "", errors.Join(err, c.stop())
		}
	}
	if err := pollReady(ctx, c, "http://"+admin+"/readyz"); err != nil {
		return nil, "", errors.Join(err, c.stop())
	}
	c.metrics = "http://" + admin + "/metrics"
	return c, proxy, nil
}

// pollReady polls url until 200, startTimeout, the child's exit or ctx's
// end, whichever comes first.
func pollReady(ctx context.Context, c *child, url string) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway not ready within %s: %w", startTimeout, err)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-c.exited:
			return fmt.Errorf("gateway exited while starting: %v; output:\n%s", c.waitErr, c.out.Tail())
		case <-ctx.Done():
			return fmt.Errorf("gateway: %w", context.Cause(ctx))
		}
	}
}

// degradedMetric is the gateway's counter of degraded decisions by reason.
const degradedMetric = "l1gw_degraded_decisions_total{reason=\""

// degradedByReason reads the gateway's degraded decisions by reason from
// its /metrics.
func degradedByReason(url string) (map[string]int64, error) {
	text, err := scrape(url)
	if err != nil {
		return nil, err
	}
	return parseDegraded(text), nil
}

// scrape is the Prometheus text exposition at url (a child's /metrics).
func scrape(url string) (string, error) {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		return "", fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("scrape metrics: GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("read metrics: %w", err)
	}
	return string(body), nil
}

// parseDegraded picks the non-zero l1gw_degraded_decisions_total{reason}
// samples out of a Prometheus text exposition.
func parseDegraded(text string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, degradedMetric)
		if !ok {
			continue
		}
		reason, value, ok := strings.Cut(rest, "\"}")
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err == nil && n > 0 {
			out[reason] = int64(n)
		}
	}
	return out
}

// algorithmOf is the rule algorithm of a gateway system: l1gw-window and
// l1gw-quota measure the counters next to the sliding log of the others.
func algorithmOf(system string) string {
	switch system {
	case "l1gw-window":
		return "sliding_window"
	case "l1gw-quota":
		return "fixed"
	}
	return ""
}
