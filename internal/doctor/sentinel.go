package doctor

import (
	"context"
	"net"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// sentinelShard asks every sentinel of redis.addrs where the primary is,
// whether it can authorise a failover (SENTINEL CKQUORUM) and which
// replicas it knows; local_replicas join those. ok is false when no
// sentinel answers.
func (d *doctor) sentinelShard(ctx context.Context) (shard, bool) {
	master := d.o.Redis.MasterName
	v := votes{}
	var s shard
	answered, quorate := 0, 0
	for i, sc := range d.c.Sentinels() {
		addr := d.o.Redis.Addrs[i]
		primary, err := sc.GetMasterAddrByName(ctx, master).Result()
		if err != nil || len(primary) != 2 {
			d.r.add(Warn, "start it, or take it out of redis.addrs",
				"sentinel %s does not give the primary of %s: %v", addr, master, err)
			continue
		}
		answered++
		v[net.JoinHostPort(primary[0], primary[1])]++
		if q, err := sc.CkQuorum(ctx, master).Result(); err != nil {
			d.r.add(Error, "start the missing sentinels, or lower the quorum (SENTINEL SET "+master+" quorum N)",
				"sentinel %s: CKQUORUM %s: %v", addr, master, err)
		} else if strings.HasPrefix(q, "OK") {
			quorate++
		}
		s.replicas = addReplicas(ctx, s.replicas, sc, master)
	}
	n := len(d.o.Redis.Addrs)
	switch {
	case answered == 0:
		d.r.add(Error, "check redis.addrs, redis.master_name and the sentinels' credentials",
			"no sentinel of the %d in redis.addrs answers for %s", n, master)
		return shard{}, false
	case answered*2 <= n:
		d.r.add(Error, "start the sentinels that do not answer",
			"%d of %d sentinels answer: no majority, no failover can be authorised", answered, n)
	case quorate == answered:
		d.r.add(OK, "", "sentinels: %d of %d answer; CKQUORUM %s is OK on each", answered, n, master)
	}
	if len(v) > 1 {
		d.r.add(Error, "wait for the failover to finish; if it lasts, check each sentinel's monitor line",
			"the sentinels disagree on the primary of %s: %s", master, v)
	}
	s.primary = v.winner()
	for _, a := range d.o.Redis.LocalReplicas {
		if !slices.Contains(s.replicas, a) {
			s.replicas = append(s.replicas, a)
		}
	}
	return s, true
}

// addReplicas adds the replicas of master that sentinel sc knows to have
// (SENTINEL REPLICAS) to have.
func addReplicas(ctx context.Context, have []string, sc *redis.SentinelClient, master string) []string {
	reps, err := sc.Replicas(ctx, master).Result()
	if err != nil {
		return have
	}
	for _, r := range reps {
		a := net.JoinHostPort(r["ip"], r["port"])
		if r["ip"] != "" && !slices.Contains(have, a) {
			have = append(have, a)
		}
	}
	return have
}
