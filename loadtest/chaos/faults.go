package main

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The faults of issue 8: Redis answers, but the gateway must not stand
// behind every answer. Each requires that no ok admission passes a limit.
func faultScenarios() []chaosScenario {
	return []chaosScenario{
		{name: "12-evict-volatile-lru-filler", setup: setupStandalone, exactOK: true, script: scriptEvict("volatile-lru", true)},
		{name: "13-evict-volatile-lru", setup: setupStandalone, exactOK: true, script: scriptEvict("volatile-lru", false)},
		{name: "14-evict-allkeys-lru-filler", setup: setupStandalone, exactOK: true, script: scriptEvict("allkeys-lru", true)},
		{name: "15-evict-allkeys-lru", setup: setupStandalone, exactOK: true, script: scriptEvict("allkeys-lru", false)},
		{name: "16-oom-noeviction", setup: setupStandalone, exactOK: true, script: scriptOOM},
		{name: "17-primary-restart-in-place", setup: setupSentinelAOF, exactOK: true, script: scriptRestartInPlace},
		{name: "18-cluster-primary-kill", setup: setupCluster, exactOK: true, script: scriptClusterKill},
		{name: "19-sentinels-down", setup: setupSentinel, exactOK: true, script: scriptSentinelsDown},
		{name: "20-replica-stall-replica-consistency", setup: setupSentinel, consistency: "replica", exactOK: true, script: scriptReplicaStall},
	}
}

// fillerKeys is how many 1 kB keys without a TTL the eviction scenarios
// with filler write: a Redis shared with other data.
const fillerKeys = 4096

// scriptEvict: maxmemory set under what Redis uses, with policy; with
// filler, 4 MB of keys without a TTL first and maxmemory 1 MB under the
// total (the policy evicts the limiter's keys or the filler), else
// maxmemory 64 kB over what is used (the limiter's own keys fill it and
// are evicted). Healed by maxmemory 0.
func scriptEvict(policy string, filler bool) func(r *chaosRun) {
	return func(r *chaosRun) {
		r.baseline()
		c := r.node.Client(r.t)
		ctx := r.t.Context()
		r.fault("evicting", func() {
			if filler {
				pipe := c.Pipeline()
				v := strings.Repeat("f", 1024)
				for i := range fillerKeys {
					pipe.Set(ctx, "filler:"+strconv.Itoa(i), v, 0)
				}
				if _, err := pipe.Exec(ctx); err != nil {
					r.t.Fatalf("write filler: %v", err)
				}
			}
			limit := usedMemory(r, c) + 64<<10
			if filler {
				limit -= 1<<20 + 64<<10
			}
			configSet(r, c, "maxmemory-policy", policy, "maxmemory", strconv.FormatInt(limit, 10))
		})
		r.hold(r.tm.stall)
		r.heal("after", func() { configSet(r, c, "maxmemory", "0", "maxmemory-policy", "noeviction") })
	}
}

// scriptOOM: maxmemory under what is used, noeviction: every write
// script is refused (OOM) before it runs.
func scriptOOM(r *chaosRun) {
	r.baseline()
	c := r.node.Client(r.t)
	r.fault("oom", func() {
		configSet(r, c, "maxmemory-policy", "noeviction", "maxmemory", strconv.FormatInt(usedMemory(r, c)-64<<10, 10))
	})
	r.hold(r.tm.stall)
	r.heal("after", func() { configSet(r, c, "maxmemory", "0") })
}

// scriptRestartInPlace: the primary (AOF on) killed and, past the
// sentinels' down-after, started again on its port as a primary while
// they fail over: it says master and would take writes that the failover
// then discards.
func scriptRestartInPlace(r *chaosRun) {
	r.baseline()
	p := r.topo.Primary()
	r.fault("restart-in-place", func() {
		p.Kill()
		time.Sleep(1200 * time.Millisecond) // past down-after: the sentinels start a failover
		p.RestartInPlace(r.t)
	})
	// Healthy once no sentinel reports the primary down or failing over,
	// and it has its replicas: after a failover, once the sentinels have
	// made a replica of the node that came back (about 10 s, their info
	// period). The node may be back before they fail it over: it has its
	// replica at once, while they still report it down.
	r.heal("after", func() { r.topo.WaitSettled(r.t) })
}

// scriptClusterKill: the primary of the limited tenant's slot killed; the
// cluster promotes its replica. The bulk tenant's shard stays healthy
// when it is another (its degraded count is noted).
func scriptClusterKill(r *chaosRun) {
	r.baseline()
	victim := r.ct.PrimaryFor(r.t, "{"+limitedTenant+"}")
	sameShard := r.ct.PrimaryFor(r.t, "{"+bulkTenant+"}") == victim
	r.fault("primary-killed", victim.Kill)
	r.heal("after", func() {
		deadline := time.Now().Add(failoverWait)
		for r.ct.PrimaryFor(r.t, "{"+limitedTenant+"}") == victim {
			if time.Now().After(deadline) {
				r.t.Fatalf("the cluster promoted no replica of %s within %v", victim, failoverWait)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	if sameShard {
		r.notes = append(r.notes, "the bulk tenant shares the killed shard: shard isolation not shown")
	} else {
		r.bulkOnHealthyShard = true
	}
}

// scriptSentinelsDown: every sentinel killed, then (two follow rounds
// later) the primary's client connections killed: the gateway redials the
// last primary it was told of, checked by ROLE. Healed by the sentinels'
// restart.
func scriptSentinelsDown(r *chaosRun) {
	r.baseline()
	sentinels := r.topo.Sentinels()
	r.fault("sentinels-down", func() {
		for _, s := range sentinels {
			s.Kill()
		}
		time.Sleep(600 * time.Millisecond)
		if err := r.topo.Primary().Client(r.t).Do(r.t.Context(), "CLIENT", "KILL", "TYPE", "normal").Err(); err != nil {
			r.t.Fatalf("CLIENT KILL: %v", err)
		}
	})
	r.hold(r.tm.phase)
	r.heal("after", func() {
		for _, s := range sentinels {
			s.Restart(r.t)
		}
	})
}

// scriptReplicaStall: replica consistency; its local replica stalled
// (SIGSTOP) with the primary healthy.
func scriptReplicaStall(r *chaosRun) {
	r.baseline()
	rep := r.topo.Replicas()[0]
	r.fault("replica-stalled", rep.Stall)
	r.hold(r.tm.stall)
	r.heal("after", rep.Resume)
}

func usedMemory(r *chaosRun, c *redis.Client) int64 {
	info, err := c.Info(r.t.Context(), "memory").Result()
	if err != nil {
		r.t.Fatalf("INFO memory: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				return n
			}
		}
	}
	r.t.Fatalf("INFO memory: no used_memory")
	return 0
}

func configSet(r *chaosRun, c *redis.Client, kv ...string) {
	args := []any{"CONFIG", "SET"}
	for _, s := range kv {
		args = append(args, s)
	}
	ctx, cancel := context.WithTimeout(r.t.Context(), 5*time.Second)
	defer cancel()
	if err := c.Do(ctx, args...).Err(); err != nil {
		r.t.Fatalf("CONFIG SET %v: %v", kv, err)
	}
}
