package limiter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore is the shared Store: N gateways enforce one limit per tenant
// through sorted sets in Redis. In exact consistency one script call on
// the primary decides every rule of a request atomically.
type RedisStore struct {
	clients  *Clients
	prefix   string
	instance string
	seq      atomic.Uint64
	denies   *denyCache      // nil when the deny cache is off
	replica  *replicaDecider // nil in exact consistency
	now      func() time.Time
}

// recordQueue bounds the admissions waiting to be written to the primary
// in replica consistency.
const recordQueue = 8192

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store over c. instance makes this gateway's
// record members unique (say, 8 random hex digits chosen at start-up);
// now is the clock of the deny cache (nil: time.Now). It does no I/O.
func NewRedisStore(c *Clients, o Options, instance string, now func() time.Time) (*RedisStore, error) {
	if now == nil {
		now = time.Now
	}
	s := &RedisStore{clients: c, prefix: o.KeyPrefix, instance: instance, now: now}
	switch o.Consistency {
	case ConsistencyExact:
	case ConsistencyReplica:
		s.replica = newReplicaDecider(s, recordQueue)
	default:
		return nil, fmt.Errorf("limiter: consistency %q is not supported", o.Consistency)
	}
	if o.DenyCache {
		s.denies = newDenyCache(denyCacheSize)
	}
	return s, nil
}

// Run writes the admissions of replica consistency to the primary until
// ctx ends, then writes what is queued. In exact consistency it returns at
// once. main runs it beside the server.
func (s *RedisStore) Run(ctx context.Context) {
	if s.replica != nil {
		s.replica.recorder.run(ctx)
	}
}

// Decide implements Store: one EVALSHA on the primary, or nothing at all
// while the deny cache knows the request cannot fit.
func (s *RedisStore) Decide(ctx context.Context, req Request) (Decision, error) {
	if len(req.Rules) > MaxRules {
		return Decision{}, ErrTooManyRules
	}
	if len(req.Rules) == 0 {
		return Decision{Allowed: true}, nil
	}
	start := s.now()
	if d, ok := s.denies.lookup(req, start); ok {
		return d, nil
	}
	var d Decision
	var err error
	cacheable := true
	if s.replica != nil {
		d, cacheable, err = s.replica.decide(ctx, req, start)
	} else {
		d, err = s.decideOnPrimary(ctx, req)
	}
	if err != nil {
		return Decision{}, err
	}
	if !d.Allowed && cacheable {
		s.denies.remember(req, &d, start)
	}
	return d, nil
}

// CachedDenial answers req from the deny cache alone, without I/O: a
// caller that hands Decide to another goroutine (degrade's budget) asks
// this first, so a tenant over its limit costs no goroutine either.
func (s *RedisStore) CachedDenial(req Request) (Decision, bool) {
	if len(req.Rules) == 0 || len(req.Rules) > MaxRules {
		return Decision{}, false
	}
	return s.denies.lookup(req, s.now())
}

// decideOnPrimary is exact consistency: one script call on the primary.
func (s *RedisStore) decideOnPrimary(ctx context.Context, req Request) (Decision, error) {
	keys, args := s.decideArgs(req)
	v, err := decideScript.Run(ctx, s.clients.Primary, keys, args...).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("decide for %s: %w", req.Tenant, err)
	}
	d, err := parseDecision(req.Rules, v)
	if err != nil {
		return Decision{}, fmt.Errorf("decide for %s: %w", req.Tenant, err)
	}
	return d, nil
}

func (s *RedisStore) decideArgs(req Request) ([]string, []any) {
	args := make([]any, 1, 1+3*len(req.Rules))
	args[0] = s.member()
	for _, r := range req.Rules {
		args = append(args, r.Window.Microseconds(), r.Limit, r.CostOrOne())
	}
	return s.keys(req.Tenant, req.Rules), args
}

// keys are the Redis keys of tenant's rules, in order.
func (s *RedisStore) keys(tenant string, rules []Rule) []string {
	keys := make([]string, len(rules))
	for i, r := range rules {
		keys[i] = Key(s.prefix, tenant, r.Name)
	}
	return keys
}

// member is unique per Decide call across every gateway: the instance and
// a sequence number, as a string.
func (s *RedisStore) member() string {
	var buf [40]byte
	b := append(buf[:0], s.instance...)
	b = append(b, ':')
	return string(strconv.AppendUint(b, s.seq.Add(1), 36))
}

// parseDecision reads decide.lua's reply: {allowed, remaining, reset_µs,
// retry_µs per rule}.
func parseDecision(rules []Rule, v []int64) (Decision, error) {
	var d Decision
	if len(v) != 1+3*len(rules) {
		return d, fmt.Errorf("script reply has %d values; want %d", len(v), 1+3*len(rules))
	}
	d.Allowed = v[0] == 1
	d.N = len(rules)
	for i, r := range rules {
		st := &d.Rules[i]
		st.Limit = r.Limit
		st.Remaining = v[1+3*i]
		st.Reset = time.Duration(v[2+3*i]) * time.Microsecond
		st.RetryAfter = time.Duration(v[3+3*i]) * time.Microsecond
	}
	return d, nil
}

// Usage reads each rule's state from the replica without recording.
func (s *RedisStore) Usage(ctx context.Context, tenant string, rules []Rule) ([]RuleUsage, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	args := make([]any, len(rules))
	for i, r := range rules {
		args[i] = r.Window.Microseconds()
	}
	v, err := usageScript.RunRO(ctx, s.clients.Replica, s.keys(tenant, rules), args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("usage of %s: %w", tenant, err)
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
	if err := s.clients.Primary.Del(ctx, s.keys(tenant, rules)...).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("reset %s: %w", tenant, err)
	}
	return nil
}

// ReplicaDenies asks the replica whether a rule of req is already full
// there, without recording. A replica never shows more than the primary
// holds, so its denial is always right; its room proves nothing (ok false).
func (s *RedisStore) ReplicaDenies(ctx context.Context, req Request) (Decision, bool, error) {
	if len(req.Rules) == 0 || len(req.Rules) > MaxRules {
		return Decision{}, false, nil
	}
	args := make([]any, 0, 4*len(req.Rules))
	for _, r := range req.Rules {
		args = append(args, r.Window.Microseconds(), r.Limit, r.CostOrOne(), 0) // no pending entries
	}
	v, err := peekScript.RunRO(ctx, s.clients.Replica, s.keys(req.Tenant, req.Rules), args...).Int64Slice()
	if err != nil {
		return Decision{}, false, fmt.Errorf("ask the replica for %s: %w", req.Tenant, err)
	}
	if len(v) != 1+4*len(req.Rules) {
		return Decision{}, false, fmt.Errorf("ask the replica for %s: script reply has %d values; want %d", req.Tenant, len(v), 1+4*len(req.Rules))
	}
	if v[0] == 1 {
		return Decision{}, false, nil
	}
	d := Decision{N: len(req.Rules)}
	for i, r := range req.Rules {
		d.Rules[i] = RuleState{Limit: r.Limit, Remaining: v[1+4*i],
			Reset: time.Duration(v[2+4*i]) * time.Microsecond, RetryAfter: time.Duration(v[3+4*i]) * time.Microsecond}
	}
	return d, true, nil
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
