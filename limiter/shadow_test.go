package limiter_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
)

// shadowRun sends 5 requests with an enforced rule (limit 100) and a
// shadow rule (limit 2), then 2 with an enforced rule of limit 1 beside
// the shadow rule, for tenant on s, and checks the decisions.
func shadowRun(t *testing.T, s limiter.Store, tenant string) (enforced, shadow, tight limiter.Rule) {
	t.Helper()
	enforced = limiter.Rule{Name: "per_minute", Limit: 100, Window: time.Minute}
	shadow = limiter.Rule{Name: "trial", Limit: 2, Window: time.Minute, Mode: limiter.RuleShadow}
	for i := 1; i <= 5; i++ {
		d := decideOK(t, s, tenant, enforced, shadow)
		if !d.Allowed || d.ShadowDenied() != (i > 2) || d.RetryAfter() != 0 {
			t.Fatalf("request %d: got allowed=%v shadow-denied=%v retry-after=%v; want true %v 0", i, d.Allowed, d.ShadowDenied(), d.RetryAfter(), i > 2)
		}
	}
	// An enforced denial is recorded in no shadow rule either.
	tight = limiter.Rule{Name: "tight", Limit: 1, Window: time.Minute}
	other := limiter.Rule{Name: "trial", Limit: 100, Window: time.Minute, Mode: limiter.RuleShadow}
	for i := 1; i <= 2; i++ {
		if d := decideOK(t, s, tenant+"-tight", tight, other); d.Allowed != (i == 1) || d.ShadowDenied() {
			t.Fatalf("tight request %d: got allowed=%v shadow-denied=%v; want %v false", i, d.Allowed, d.ShadowDenied(), i == 1)
		}
	}
	return enforced, shadow, tight
}

// wantCards polls, up to 5s, until c holds want members in each key.
func wantCards(t *testing.T, c *redis.Client, want map[string]int64) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, func() error {
		for k, n := range want {
			if got := c.ZCard(context.Background(), k).Val(); got != n {
				return fmt.Errorf("%s holds %d members; want %d", k, got, n)
			}
		}
		return nil
	})
}

// TestShadowRuleOnRealRedis: in exact consistency a shadow rule is
// decided in the same script call, into a set of its own
// (<prefix>:{<tenant>}:shadow:<rule>), which holds only the requests it
// had room for, with the window's TTL.
func TestShadowRuleOnRealRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	c := srv.Client(t)
	s, prefix := newRedisStore(t, redisOptions(limiter.ModeStandalone, srv.Addr()), true)
	decideOK(t, s, "warm", limiter.Rule{Name: "r", Limit: 1, Window: time.Second}) // the script loaded
	before := commands(t, c, "evalsha") + commands(t, c, "eval")
	shadowRun(t, s, "acme")
	if n := commands(t, c, "evalsha") + commands(t, c, "eval") - before; n != 7 {
		t.Fatalf("7 decisions took %d script calls; want 7 (shadow rules in the same call)", n)
	}
	shadowKey := limiter.ShadowKey(prefix, "acme", "trial")
	if shadowKey != prefix+":{acme}:shadow:trial" {
		t.Fatalf("shadow key %q; want %s:{acme}:shadow:trial", shadowKey, prefix)
	}
	wantCards(t, c, map[string]int64{
		limiter.Key(prefix, "acme", "per_minute"): 5,
		shadowKey:                                        2,
		limiter.Key(prefix, "acme", "trial"):             0, // no enforced rule of that name
		limiter.Key(prefix, "acme-tight", "tight"):       1,
		limiter.ShadowKey(prefix, "acme-tight", "trial"): 1,
	})
	if ttl := c.PTTL(context.Background(), shadowKey).Val(); ttl <= 50*time.Second {
		t.Fatalf("shadow set PTTL %v; want about the window, 1m", ttl)
	}
}

// TestShadowRuleReplicaConsistency: the same in replica consistency:
// decided on the replica, recorded on the primary by the recorder.
func TestShadowRuleReplicaConsistency(t *testing.T) {
	t.Parallel()
	topo := redistest.Topology(t, redistest.Options{Replicas: 1, Sentinels: 3})
	s := newReplicaStore(t, topo, topo.Replicas()[0], "sh")
	shadowRun(t, s, "acme")
	wantCards(t, topo.Primary().Client(t), map[string]int64{
		limiter.Key("sh", "acme", "per_minute"):        5,
		limiter.ShadowKey("sh", "acme", "trial"):       2,
		limiter.Key("sh", "acme-tight", "tight"):       1,
		limiter.ShadowKey("sh", "acme-tight", "trial"): 1,
	})
}
