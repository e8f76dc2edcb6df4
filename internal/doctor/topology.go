package doctor

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/limiter"
)

// shards finds the primaries and their replicas: in standalone the one
// address, in Sentinel what the sentinels say (checking them on the way),
// in Cluster the primaries of the slot map; replicas are those each
// primary's ROLE lists, and in Sentinel also those the sentinels list.
func (d *doctor) shards(ctx context.Context) []shard {
	switch d.o.Redis.Mode {
	case limiter.ModeStandalone:
		return []shard{{primary: d.o.Redis.Addrs[0]}}
	case limiter.ModeSentinel:
		s, ok := d.sentinelShard(ctx)
		if !ok {
			return nil
		}
		return []shard{s}
	case limiter.ModeCluster:
		return d.clusterShards(ctx)
	}
	return nil
}

// clusterShards are the cluster's primaries as the slot map names them.
func (d *doctor) clusterShards(ctx context.Context) []shard {
	cc, ok := d.c.Primary.(*redis.ClusterClient)
	if !ok {
		return nil
	}
	var mu sync.Mutex
	var out []shard
	err := cc.ForEachMaster(ctx, func(_ context.Context, cl *redis.Client) error {
		mu.Lock()
		out = append(out, shard{primary: cl.Options().Addr})
		mu.Unlock()
		return nil
	})
	if err != nil {
		d.r.add(Error, "check redis.addrs and that the cluster answers CLUSTER SLOTS", "cluster: cannot list the primaries: %v", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].primary < out[j].primary })
	return out
}

// checkShard checks the primary's ROLE and settings, then each replica.
func (d *doctor) checkShard(ctx context.Context, s shard) {
	cl := d.c.NodeClient(s.primary)
	defer cl.Close()
	listed, ok := d.checkPrimaryRole(ctx, cl, s.primary)
	if !ok {
		return
	}
	for _, a := range listed {
		if !slices.Contains(s.replicas, a) {
			s.replicas = append(s.replicas, a)
		}
	}
	offset := replOffset(ctx, cl)
	d.checkSettings(ctx, cl, s.primary, len(listed), true)
	if len(s.replicas) == 0 && d.o.Redis.Mode != limiter.ModeStandalone {
		d.r.add(Warn, "add a replica (replicaof the primary) so a failover has one to promote",
			"no replica of the primary %s", s.primary)
	}
	for _, a := range s.replicas {
		d.checkReplica(ctx, s.primary, a, offset)
	}
}

// checkPrimaryRole checks that the node at addr says master, and returns
// the replicas its ROLE lists.
func (d *doctor) checkPrimaryRole(ctx context.Context, cl *redis.Client, addr string) ([]string, bool) {
	role, err := cl.Do(ctx, "ROLE").Slice()
	if err != nil && strings.HasPrefix(err.Error(), "NOPERM") {
		// The README's ACL allows +info everywhere, +role only under
		// Sentinel: INFO replication says the same.
		if role, err = roleFromInfo(ctx, cl); err == nil && d.o.Redis.Mode == limiter.ModeSentinel {
			d.r.add(Warn, "allow redis.username +role: under Sentinel every decision connection checks ROLE",
				"ROLE refused on %s (NOPERM); read from INFO replication instead", addr)
		}
	}
	if err != nil {
		d.r.add(Error, "check that the node is up and reachable, and allow redis.username +info",
			"ROLE of the primary %s: %v", addr, err)
		return nil, false
	}
	name, _ := role[0].(string)
	if name != "master" || len(role) < 3 {
		d.r.add(Error, "point redis.addrs at the primary (or, under Sentinel, wait for the failover to finish)",
			"the primary %s says ROLE %s, not master: every write to it is refused", addr, name)
		return nil, false
	}
	var replicas []string
	list, _ := role[2].([]any)
	for _, e := range list {
		if r, ok := e.([]any); ok && len(r) >= 2 {
			host, _ := r[0].(string)
			port, _ := r[1].(string)
			replicas = append(replicas, net.JoinHostPort(host, port))
		}
	}
	d.r.add(OK, "", "ROLE of the primary %s: master, %d replica(s) connected", addr, len(replicas))
	return replicas, true
}

// votes counts the sentinels naming each primary address.
type votes map[string]int

// winner is the address most sentinels name, ties broken by address.
func (v votes) winner() string {
	best := ""
	for a, n := range v {
		if best == "" || n > v[best] || n == v[best] && a < best {
			best = a
		}
	}
	return best
}

func (v votes) String() string {
	var parts []string
	for a, n := range v {
		parts = append(parts, fmt.Sprintf("%s (%d)", a, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// roleFromInfo builds ROLE's reply shape (["master", offset, [[ip, port,
// offset]…]] or ["slave", …]) from INFO replication.
func roleFromInfo(ctx context.Context, cl *redis.Client) ([]any, error) {
	info, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return nil, err
	}
	var role string
	var replicas []any
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch {
		case k == "role":
			role = v
		case strings.HasPrefix(k, "slave") && strings.Contains(v, "ip="):
			var ip, port string
			for _, f := range strings.Split(v, ",") {
				if a, b, ok := strings.Cut(f, "="); ok && a == "ip" {
					ip = b
				} else if ok && a == "port" {
					port = b
				}
			}
			replicas = append(replicas, []any{ip, port, "0"})
		}
	}
	if role == "" {
		return nil, fmt.Errorf("INFO replication has no role")
	}
	return []any{role, int64(0), replicas}, nil
}
