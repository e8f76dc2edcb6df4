package limiter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Usage reads each rule's state from the replica without recording.
func (s *RedisStore) Usage(ctx context.Context, tenant string, rules []Rule) ([]RuleUsage, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	now := s.now()
	var periods [MaxRules]span
	fillPeriods(&s.zones, rules, now, &periods)
	args := make([]any, 0, 2*len(rules))
	for i, r := range rules {
		if r.algo() == algoFixed {
			args = append(args, periods[i].end-now.UnixMicro(), modeArg(r))
		} else {
			args = append(args, r.Window.Microseconds(), modeArg(r))
		}
	}
	keys := s.keys(tenant, rules, now)
	v := make([]int64, 0, 2*len(rules))
	for lo, hi := 0, 0; lo < len(rules); lo = hi {
		hi = s.slotRunEnd(rules, lo)
		part, err := usageScript.RunRO(ctx, s.clients.Replica, keys[lo:hi], args[2*lo:2*hi]...).Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("usage of %s: %w", tenant, err)
		}
		v = append(v, part...)
	}
	if len(v) != 2*len(rules) {
		return nil, fmt.Errorf("usage of %s: script reply has %d values; want %d", tenant, len(v), 2*len(rules))
	}
	out := make([]RuleUsage, len(rules))
	for i, r := range rules {
		out[i] = RuleUsage{Rule: r, Used: v[2*i], Reset: time.Duration(v[2*i+1]) * time.Microsecond}
	}
	return out, nil
}

// Reset forgets everything recorded for tenant's rules, on the primary and
// in the deny cache.
func (s *RedisStore) Reset(ctx context.Context, tenant string, rules []Rule) error {
	s.denies.forget(tenant)
	if s.replica != nil {
		s.replica.forgetTenant(tenant) // records already queued may still land
	}
	if len(rules) == 0 {
		return nil
	}
	keys := s.keys(tenant, rules, s.now())
	for lo, hi := 0, 0; lo < len(rules); lo = hi {
		hi = s.slotRunEnd(rules, lo)
		if err := s.clients.Primary.Del(ctx, keys[lo:hi]...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("reset %s: %w", tenant, err)
		}
	}
	return nil
}

// slotRunEnd is where the rules one command may take from rules[lo] on
// end: on Cluster, the run of rules[lo]'s hash tag (a shared limit's keys
// are in a slot of their own); elsewhere, the end.
func (s *RedisStore) slotRunEnd(rules []Rule, lo int) int {
	if s.cluster {
		return runEnd(rules, lo)
	}
	return len(rules)
}

// EvictionPolicy is the primary's maxmemory-policy; "" when CONFIG GET is
// not allowed.
func (s *RedisStore) EvictionPolicy(ctx context.Context) string {
	m, err := s.clients.Primary.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return ""
	}
	return m["maxmemory-policy"]
}
