package app

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
)

// TestShadowRule: tenant "trying" tries a limit of 2 per hour in shadow.
// Every request is admitted; from the 3rd on, the answer names the rule in
// X-RateLimit-Shadow and l1gw_ratelimit_decisions_total{result=
// "shadow_denied"} counts it, while Retry-After, the remaining counts and
// the RateLimit header know only the enforced rule. The admin API shows
// the rule with its mode and its own count. On the memory store and on
// Redis, where the shadow rule has a sorted set of its own.
func TestShadowRule(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		checkShadow(t, nil, nil)
	})
	t.Run("redis", func(t *testing.T) {
		node := redistest.Server(t)
		checkShadow(t, []string{"redis.mode=standalone", "redis.addrs=" + node.Addr(), "ratelimit.key_prefix=shadow", "ratelimit.budget=3s"},
			func() string {
				c := node.Client(t)
				return fmt.Sprint(c.ZCard(t.Context(), limiter.Key("shadow", "trying", "per_hour")).Val(), " ",
					c.ZCard(t.Context(), limiter.ShadowKey("shadow", "trying", "tighter")).Val(), " ",
					c.Exists(t.Context(), limiter.Key("shadow", "trying", "tighter")).Val())
			})
	})
}

// checkShadow runs 5 requests of tenant "trying" through a gateway on
// sets; cards, if not nil, is "enforced shadow enforced-key-of-the-shadow-
// name" as the store holds them.
func checkShadow(t *testing.T, sets []string, cards func() string) {
	// The upstream claims a shadow denial of its own: never passed on.
	up := testkit.StartUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("X-RateLimit-Shadow", "upstream")
	})
	gw := startApp(t, loadConfig(t, up.URL, append(sets, "server.admin_token=tok")...))
	counter := func(result string) *metrics.Counter {
		return metrics.GetOrCreateCounter(`l1gw_ratelimit_decisions_total{tenant="trying",result="` + result + `"}`)
	}
	shadowBefore, allowedBefore := counter("shadow_denied").Get(), counter("allowed").Get()
	for i := 1; i <= 5; i++ {
		resp := call(t, gw.proxy, "GET", "/try", "X-API-Key", "trying-key", "X-RateLimit-Shadow", "client")
		want := map[string]string{
			"X-RateLimit-Shadow": "", "Retry-After": "", "X-RateLimit-Limit": "1000000000",
			"X-RateLimit-Remaining": fmt.Sprint(1000000000 - i),
			"RateLimit-Policy":      `"per_hour";q=1000000000;w=3600, "tighter";q=2;w=3600;shadow`,
		}
		if i >= 3 {
			want["X-RateLimit-Shadow"] = "tighter"
		}
		if resp.StatusCode() != 200 {
			t.Fatalf("request %d: got %d; want 200 (a shadow rule denies nothing)", i, resp.StatusCode())
		}
		for k, v := range want {
			if got := string(resp.Header.Peek(k)); got != v {
				t.Errorf("request %d: %s %q; want %q", i, k, got, v)
			}
		}
		rl := string(resp.Header.Peek("RateLimit"))
		if want := fmt.Sprintf(`"per_hour";r=%d;t=`, 1000000000-i); !strings.HasPrefix(rl, want) || strings.Contains(rl, ",") {
			t.Errorf("request %d: RateLimit %q; want the enforced rule alone, %s…", i, rl, want)
		}
	}
	if n := counter("shadow_denied").Get() - shadowBefore; n != 3 {
		t.Errorf("shadow_denied grew by %d; want 3", n)
	}
	if n := counter("allowed").Get() - allowedBefore; n != 5 {
		t.Errorf("allowed grew by %d; want 5 (shadow_denied counts besides)", n)
	}
	if cards != nil {
		if got := cards(); got != "5 2 0" {
			t.Errorf("enforced set, shadow set, enforced key of the shadow name: %s; want 5 2 0", got)
		}
	}
	checkShadowAdmin(t, gw)
}

// checkShadowAdmin reads tenant "trying" through the admin API after
// checkShadow's requests: the shadow rule with its mode and count, and a
// simulation it would deny but that is allowed.
func checkShadowAdmin(t *testing.T, gw *running) {
	resp := call(t, gw.admin, "GET", "/v1/tenants/trying/usage", "Authorization", "Bearer tok")
	var usage struct {
		Rules []map[string]any `json:"rules"`
	}
	if err := json.Unmarshal(resp.Body(), &usage); err != nil || len(usage.Rules) != 2 {
		t.Fatalf("usage: %d %s; want two rules", resp.StatusCode(), resp.Body())
	}
	if r := usage.Rules[1]; r["name"] != "tighter" || r["mode"] != "shadow" || r["used"] != 2.0 || r["remaining"] != 0.0 {
		t.Errorf("usage of the shadow rule: %v; want tighter, mode shadow, 2 used, 0 remaining", r)
	}
	if _, ok := usage.Rules[0]["mode"]; ok || usage.Rules[0]["used"] != 5.0 {
		t.Errorf("usage of the enforced rule: %v; want no mode, 5 used", usage.Rules[0])
	}
	_, sim := simulate(t, gw, `{"tenant":"trying","method":"GET","path":"/try"}`)
	if sim.Result != "allowed" || rules(sim) != "per_hour 5/1000000000 true, tighter 2/2 false" || sim.Rules[1].Mode != "shadow" {
		t.Errorf("simulation: %s (%s, mode %q); want allowed, the shadow rule not fitting", sim.Result, rules(sim), sim.Rules[1].Mode)
	}
	if strings.Contains(string(resp.Body()), `"mode":"enforce"`) {
		t.Errorf("usage %s: an enforced rule shows a mode; want it absent", resp.Body())
	}
}
