package doctor

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/limiter"
)

// minTimeout is the shortest Redis `timeout` (seconds) that is no
// concern: it closes connections idle that long, and the decision
// connections (whose idle connection the gateway redials and retries on
// once) idle that long only in a quiet spell.
const minTimeout = 300

// checkSettings checks the node's config against README "Production Redis
// settings": every data node, since a replica may be promoted. replicas
// is how many replicas a primary has; primary says whether it is one.
func (d *doctor) checkSettings(ctx context.Context, cl *redis.Client, addr string, replicas int, primary bool) {
	cfg, err := cl.ConfigGet(ctx, "*").Result()
	if err != nil {
		d.r.add(Warn, "check maxmemory-policy noeviction, appendonly yes, tcp-keepalive > 0 and timeout 0 in your provider's settings",
			"cannot check the settings of %s (CONFIG GET refused: %v)", addr, err)
		return
	}
	var fine []string
	check := func(key string, sev Severity, fix, why string) {
		if sev == OK {
			fine = append(fine, key+" "+cfg[key])
			return
		}
		d.r.add(sev, fix, "%s %s on %s: %s", key, cfg[key], addr, why)
	}
	sev, fix, why := evictionPolicy(cfg["maxmemory-policy"])
	check("maxmemory-policy", sev, fix, why)
	sev, why = OK, ""
	if t, _ := strconv.Atoi(cfg["timeout"]); t > 0 && t < minTimeout {
		sev, why = Warn, "closes connections idle that long: go-redis pools churn, and a decision after a quiet spell waits on a new dial"
	}
	check("timeout", sev, "CONFIG SET timeout 0", why)
	sev = OK
	if k, _ := strconv.Atoi(cfg["tcp-keepalive"]); k <= 0 {
		sev = Warn
	}
	check("tcp-keepalive", sev, "CONFIG SET tcp-keepalive 60", "connections of gateways that vanished stay open")
	sev = OK
	if cfg["appendonly"] != "yes" {
		sev = Warn
	}
	check("appendonly", sev, "CONFIG SET appendonly yes (appendfsync everysec)",
		"restarted in place, it comes back without its records and every tenant's window starts again")
	if primary {
		sev, fix, why = d.minReplicas(cfg["min-replicas-to-write"], replicas)
		check("min-replicas-to-write", sev, fix, why)
	}
	if d.o.Redis.Mode == limiter.ModeCluster && cfg["cluster-require-full-coverage"] == "yes" {
		check("cluster-require-full-coverage", Warn, "CONFIG SET cluster-require-full-coverage no",
			"while one shard has no primary every shard answers CLUSTERDOWN and every tenant degrades")
	}
	if len(fine) > 0 {
		d.r.add(OK, "", "settings of %s: %s", addr, strings.Join(fine, ", "))
	}
}

// evictionPolicy judges a maxmemory-policy as the README does: noeviction
// is right; volatile-* evicts the limiter's keys (all with a TTL) first;
// allkeys-* evicts them too.
func evictionPolicy(p string) (Severity, string, string) {
	const fix = "CONFIG SET maxmemory-policy noeviction, on a Redis for the limiter alone"
	switch {
	case p == "noeviction":
		return OK, "", ""
	case strings.HasPrefix(p, "allkeys-"):
		return Error, fix, "evicts live limits: a tenant whose records are evicted is admitted past its limit"
	default:
		return Error, fix, "under memory pressure it evicts the limiter's keys first (they all have a TTL): a tenant whose records are evicted is admitted past its limit"
	}
}

// minReplicas judges min-replicas-to-write on a primary with replicas
// connected replicas.
func (d *doctor) minReplicas(v string, replicas int) (Severity, string, string) {
	n, _ := strconv.Atoi(v)
	switch {
	case n > replicas:
		return Error, fmt.Sprintf("connect the replicas, or CONFIG SET min-replicas-to-write %d", replicas),
			fmt.Sprintf("with %d replica(s) connected, every decision is refused (NOREPLICAS)", replicas)
	case n == 0 && d.o.Redis.Mode == limiter.ModeSentinel:
		return Warn, "CONFIG SET min-replicas-to-write 1 min-replicas-max-lag 10",
			"cut off from its replicas, it takes decisions a failover discards"
	}
	return OK, "", ""
}
