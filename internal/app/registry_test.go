package app

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/redistest"
)

// adminCall sends a request to a gateway's admin API with token "tok".
func adminCall(t *testing.T, addr, method, path, body string) (int, []byte) {
	t.Helper()
	return adminCallWith(t, addr, "tok", method, path, body)
}

// adminCallWith sends a request to a gateway's admin API with token.
func adminCallWith(t *testing.T, addr, token, method, path, body string) (int, []byte) {
	t.Helper()
	req, resp := &fasthttp.Request{}, &fasthttp.Response{}
	req.SetRequestURI("http://" + addr + path)
	req.Header.SetMethod(method)
	req.Header.Set("Authorization", "Bearer "+token)
	req.SetBodyString(body)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...)
}

// until polls cond until it holds and returns how long that took, or
// fails after limit.
func until(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestRegistryAcrossGateways: three gateways on one Sentinel topology.
// Writes go through A's admin API. B polls only every minute, so what
// reaches it within seconds came by notification; C's Redis user may not
// subscribe (an ACL without channels), so what reaches it came by its
// one-second poll. A created tenant is served, a changed limit applies, a
// rotated key's old secret works until its expiry and not after, and a
// revoked key is refused, on both.
func TestRegistryAcrossGateways(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3})
	for _, n := range topo.Nodes() {
		// resetchannels: no pub/sub channel at all, SUBSCRIBE is refused.
		if err := n.Client(t).Do(context.Background(), "ACL", "SETUSER", "nochan", "on", ">pw", "~*", "resetchannels", "+@all").Err(); err != nil {
			t.Fatal(err)
		}
	}
	up, _ := startUpstream(t)
	sets := []string{"redis.mode=sentinel", "redis.addrs=" + strings.Join(topo.SentinelAddrs(), ","), "tenants.source=both",
		"server.admin_token=tok", "ratelimit.key_prefix=reg", "redis.pool_timeout=2s", "redis.read_timeout=2s",
		"redis.write_timeout=2s", "ratelimit.budget=3s"}
	a := startApp(t, loadConfig(t, up, append(sets, "tenants.refresh=1m")...))
	b := startApp(t, loadConfig(t, up, append(sets, "tenants.refresh=1m")...))
	c := startApp(t, loadConfig(t, up, append(sets, "tenants.refresh=1s", "redis.username=nochan", "redis.password=pw")...))
	readers := map[string]*running{"B (notified)": b, "C (polled)": c}
	write := func(method, path, body string, want int) []byte {
		t.Helper()
		code, out := adminCall(t, a.admin, method, path, body)
		if code != want {
			t.Fatalf("%s %s: %d %s; want %d", method, path, code, out, want)
		}
		return out
	}
	status := func(gw *running, key string) int {
		return call(t, gw.proxy, "GET", "/reg", "X-API-Key", key).StatusCode()
	}
	// each waits until cond holds on B and on C: B within a few seconds
	// (its poll is a minute away), C within a few of its 1 s polls.
	each := func(what string, cond func(gw *running) bool) {
		t.Helper()
		for name, gw := range readers {
			took := until(t, name+": "+what, 5*time.Second, func() bool { return cond(gw) })
			t.Logf("%s: %s after %s", name, what, took.Round(time.Millisecond))
		}
	}

	write("PUT", "/v1/plans/reg-plan", `{"limits":[{"name":"per_minute","limit":1000,"window":"1m"}]}`, 201)
	write("PUT", "/v1/tenants/newco", `{"plan":"reg-plan"}`, 201)
	type issued struct {
		KeyID string `json:"key_id"`
		Key   string `json:"key"`
	}
	var k1, k2, k3, k4 issued
	if err := json.Unmarshal(write("POST", "/v1/tenants/newco/keys", "", 201), &k1); err != nil {
		t.Fatal(err)
	}
	each("serves the new tenant's key", func(gw *running) bool { return status(gw, k1.Key) == 200 })

	write("PUT", "/v1/plans/reg-plan", `{"limits":[{"name":"per_minute","limit":7,"window":"1m"}]}`, 200)
	each("applies the changed limit", func(gw *running) bool {
		resp := call(t, gw.proxy, "GET", "/reg", "X-API-Key", k1.Key)
		return strings.Contains(string(resp.Header.Peek("RateLimit-Policy")), `"per_minute";q=7;`)
	})

	expires := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	body := `{"rotate_from":"` + k1.KeyID + `","expires_at":"` + expires.Format(time.RFC3339) + `"}`
	if err := json.Unmarshal(write("POST", "/v1/tenants/newco/keys", body, 201), &k2); err != nil {
		t.Fatal(err)
	}
	each("serves the rotated-in key", func(gw *running) bool { return status(gw, k2.Key) != 401 })
	for name, gw := range readers {
		if code := status(gw, k1.Key); time.Now().Before(expires) && code == 401 {
			t.Errorf("%s: the rotated key is refused before its expiry", name)
		}
	}
	time.Sleep(time.Until(expires) + 50*time.Millisecond)
	for name, gw := range readers {
		if code := status(gw, k1.Key); code != 401 {
			t.Errorf("%s: the rotated key answered %d after its expiry; want 401", name, code)
		}
	}

	write("DELETE", "/v1/tenants/newco/keys/"+k2.KeyID, "", 204)
	each("refuses the revoked key", func(gw *running) bool { return status(gw, k2.Key) == 401 })

	// The file's tenant wins a conflict, and the API says so.
	write("PUT", "/v1/tenants/acme", `{"plan":"reg-plan"}`, 409)

	// A key's last use, gathered by B in memory, is written when B stops
	// (and every 10 s before), and listed by A.
	if err := json.Unmarshal(write("POST", "/v1/tenants/newco/keys", "", 201), &k3); err != nil {
		t.Fatal(err)
	}
	until(t, "B knows the third key", 5*time.Second, func() bool { return status(b, k3.Key) != 401 }) // 429 past the limit of 7
	// A simulation on B with a fourth key is no use of it.
	if err := json.Unmarshal(write("POST", "/v1/tenants/newco/keys", "", 201), &k4); err != nil {
		t.Fatal(err)
	}
	until(t, "B simulates with the fourth key", 5*time.Second, func() bool {
		_, sim := simulate(t, b, `{"key":"`+k4.Key+`","method":"GET","path":"/reg"}`)
		return sim.Tenant == "newco"
	})
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Keys []struct {
			KeyID    string    `json:"key_id"`
			LastUsed time.Time `json:"last_used_at"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(write("GET", "/v1/tenants/newco/keys", "", 200), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range list.Keys {
		found = found || k.KeyID == k3.KeyID
		if k.KeyID == k2.KeyID {
			t.Errorf("the revoked key %s is still listed", k.KeyID)
		}
		if k.KeyID == k3.KeyID && time.Since(k.LastUsed) > time.Minute {
			t.Errorf("key %s last used %v; want within the last minute", k.KeyID, k.LastUsed)
		}
		if k.KeyID == k4.KeyID && !k.LastUsed.IsZero() {
			t.Errorf("key %s, only simulated, last used %v; want never", k.KeyID, k.LastUsed)
		}
	}
	if !found {
		t.Errorf("key %s is not listed: %+v", k3.KeyID, list.Keys)
	}
}
