package limiter

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// RedisStore is the shared Store: N gateways enforce one limit per tenant
// through sorted sets in Redis. In exact consistency one script call on
// the primary decides every rule of a request atomically. Decisions travel
// over pipes of their own (pipe.go), within the budget; the admin API's
// reads and writes use the go-redis clients.
type RedisStore struct {
	clients  *Clients
	primary  router
	replicas router
	prefix   string
	instance string
	budget   time.Duration
	seq      atomic.Uint64
	denies   *denyCache      // nil when the deny cache is off
	replica  *replicaDecider // nil in exact consistency
	releases chan release    // leases to give back (lease.go)
	now      func() time.Time
	zones    zones // fixed rules' time zones
	cluster  bool  // Redis Cluster: one call per hash tag (split.go)
}

// recordQueue bounds the admissions waiting to be written to the primary
// in replica consistency.
const recordQueue = 8192

// defaultQueueTimeout applies when Options.QueueTimeout is unset.
const defaultQueueTimeout = time.Second

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store over c. budget is how long Redis may stay
// silent on a decision before Decide gives up with ErrBudget. instance
// makes this store's record members unique, and names its high-water
// marks (replica consistency), which never go back: it must never be
// used by another store, before or after (the gateway takes 12 random
// hex digits at start-up); now is the clock of the deny cache (nil:
// time.Now). It does no I/O: connections are dialed by the first decision.
func NewRedisStore(c *Clients, o Options, budget time.Duration, instance string, now func() time.Time) (*RedisStore, error) {
	if now == nil {
		now = time.Now
	}
	if budget <= 0 {
		return nil, fmt.Errorf("limiter: budget %s; want > 0", budget)
	}
	cfg := pipeConfig{
		conn: connOptions{username: c.opts.Username, password: c.opts.password, db: c.opts.DB, tls: c.tls,
			dialTimeout: c.opts.DialTimeout},
		lanes: c.opts.DecisionConns, budget: budget, silence: max(c.opts.ReadTimeout, budget),
		queueTimeout: o.QueueTimeout, mixed: c.opts.Mode != ModeCluster,
	}
	if cfg.queueTimeout <= 0 {
		cfg.queueTimeout = defaultQueueTimeout
	}
	if cfg.conn.dialTimeout <= 0 {
		cfg.conn.dialTimeout = time.Second
	}
	var s *RedisStore
	cfg.late = func(o *op) { s.releaseLate(o) }
	s = &RedisStore{clients: c, prefix: o.KeyPrefix, instance: instance, budget: budget, now: now,
		releases: make(chan release, releaseQueue), cluster: c.opts.Mode == ModeCluster}
	s.primary, s.replicas = newRoutes(c, cfg)
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

// Run writes the released leases, and the admissions of replica
// consistency, to the primary until ctx ends, then writes what is queued.
// main runs it beside the server.
func (s *RedisStore) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.runReleases(ctx)
	}()
	if s.replica != nil {
		s.replica.recorder.run(ctx)
	}
	<-done
}

// Connect dials the decision connections of the primary and the replica
// (in Cluster, of every node the slot map names) and waits until each has
// dialed once or ctx ends. main calls it before serving, so the first
// burst of traffic never waits on a dial. A Redis that is down is no error
// here: decisions dial again and fail over to the fail mode.
func (s *RedisStore) Connect(ctx context.Context) {
	for _, r := range []router{s.primary, s.replicas} {
		r.connect(ctx)
	}
}

// Drain waits, up to timeout, until no decision is queued or on the wire
// (calls given up past their budget included, whose records still land);
// main calls it at shutdown before stopping the recorder.
func (s *RedisStore) Drain(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for _, r := range []router{s.primary, s.replicas} {
		for _, p := range r.all() {
			for !p.idle() {
				if time.Now().After(deadline) {
					return false
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	return true
}

// Close stops the decision connections. The Clients are the caller's.
func (s *RedisStore) Close() {
	for _, r := range []router{s.primary, s.replicas} {
		r.close()
	}
}

// Decide implements Store: one script call on the primary, or nothing at
// all while the deny cache knows the request cannot fit. It returns within
// the budget of Redis' silence: an error wrapping ErrBudget when Redis
// did not answer, ErrOverload when the decision waited too long to be
// sent.
func (s *RedisStore) Decide(ctx context.Context, req Request) (d Decision, err error) {
	if len(req.Rules) > MaxRules {
		return d, ErrTooManyRules
	}
	if len(req.Rules) == 0 {
		d.Allowed = true
		return d, nil
	}
	start := s.now()
	if s.denies.lookup(req, start, &d) {
		return d, nil
	}
	cacheable := true
	if s.replica != nil {
		cacheable, err = s.replica.decide(ctx, req, start, &d)
	} else {
		// A lease is given back at once, so a denial of one is never
		// remembered.
		err = s.decideOnPrimary(req, start, &d)
		cacheable = !leaseDenied(req.Rules, &d)
	}
	if err != nil {
		return Decision{}, err
	}
	if !d.Allowed && cacheable {
		s.denies.remember(req, &d, start)
	}
	return d, nil
}

// Shard names the primary that decides tenant's requests: in Cluster, the
// address of its slot's primary; elsewhere "".
func (s *RedisStore) Shard(tenant string) string { return s.primary.shard(tenant) }

// decideOnPrimary is exact consistency: one script call on the primary
// (on Cluster, one per hash tag of the request's rules: split.go). now is
// the gateway's clock, which places fixed rules in their periods. It
// fills d (a Decision is about 1.2 KB: it is filled in place, not copied
// up the calls).
func (s *RedisStore) decideOnPrimary(req Request, now time.Time, d *Decision) error {
	seq := s.seq.Add(1)
	if s.cluster && mixedTags(req.Rules) {
		return s.decideSplit(req, seq, now, d)
	}
	if err := s.decideCall(req, ruleTag(req.Tenant, req.Rules[0]), seq, now, d); err != nil { // one tag: the tenant's, or a scope's
		return fmt.Errorf("decide for %s: %w", req.Tenant, err)
	}
	return nil
}

// decideCall runs decide.lua for req's rules, routed by tag (the tenant,
// or the scope of every rule), as decision seq, into d.
func (s *RedisStore) decideCall(req Request, tag string, seq uint64, now time.Time, d *Decision) error {
	o := getOp()
	o.kind, o.req, o.prefix, o.instance, o.seq, o.budget = opDecide, req, s.prefix, s.instance, seq, s.budget
	o.req.Tenant = tag
	o.now = now.UnixMicro()
	if !logOnly(req.Rules) {
		fillPeriods(&s.zones, req.Rules, now, &o.periods)
	}
	o, p, err := carry(s.primary, o)
	if err != nil {
		return err
	}
	defer o.release()
	if err := parseDecision(req.Rules, &o.periods, o.reply[:o.n], d); err != nil {
		return err
	}
	d.Seq = o.seq
	if d.Allowed {
		if why := p.health.why(req.Rules, p.now()); why != "" {
			d.Degraded, d.Why = true, why
		}
	}
	return nil
}

// primaryWhy is why the primary of tenant cannot stand behind a decision
// of rules now (see nodeHealth), or "".
func (s *RedisStore) primaryWhy(tenant string, rules []Rule) string {
	p, err := s.primary.pipeFor(tenant)
	if err != nil {
		return ""
	}
	p.once.Do(p.start) // its watchers run from its first use
	if p.asleep.Load() {
		// Judged by its health, the node is in use though its pipe
		// carries nothing (replica consistency records through another
		// client): its memory state is read at the busy pace again.
		p.rouse(time.Now().UnixNano())
	}
	return p.health.why(rules, p.now())
}

// peek runs peek.lua on the tenant's replica within budget; v is valid
// until release is called.
func (s *RedisStore) peek(req Request, keys []string, args []any, budget time.Duration) (o *op, err error) {
	return s.peekOn(s.replicas, req, keys, args, budget)
}

// peekOn runs peek.lua on rt's node for the tenant (the replica, or the
// primary when the replica is out).
func (s *RedisStore) peekOn(rt router, req Request, keys []string, args []any, budget time.Duration) (o *op, err error) {
	if budget <= 0 {
		return nil, fmt.Errorf("%w: none left for the replica", ErrBudget)
	}
	o = getOp()
	o.kind, o.req, o.keys, o.args, o.budget = opPeek, req, keys, args, budget
	if o, _, err = carry(rt, o); err != nil {
		return nil, err
	}
	if o.n != 1+4*len(req.Rules) {
		o.release()
		return nil, fmt.Errorf("script reply has %d values; want %d", o.n, 1+4*len(req.Rules))
	}
	return o, nil
}

// answers asks the primary of tenant a read that costs it next to
// nothing (peek.lua over no rule) within the budget: nil if it answered.
func (s *RedisStore) answers(tenant string) error {
	o, err := s.peekOn(s.primary, Request{Tenant: tenant}, nil, []any{s.instance}, s.budget)
	if err == nil {
		o.release()
	}
	return err
}

// keys are the Redis keys of tenant's rules, in order (a shadow rule's
// its own: ShadowKey), a fixed rule's for its period at now.
func (s *RedisStore) keys(tenant string, rules []Rule, now time.Time) []string {
	var periods [MaxRules]span
	fillPeriods(&s.zones, rules, now, &periods)
	keys := make([]string, len(rules))
	for i, r := range rules {
		keys[i] = ruleKey(s.prefix, tenant, r, periods[i].start)
	}
	return keys
}

// member is unique per decision across every gateway: the instance and
// a sequence number, as a string.
func (s *RedisStore) member() string { return s.memberOf(s.seq.Add(1)) }

// parseDecision reads decide.lua's reply: {allowed, remaining, reset_µs,
// retry_µs per rule}, into d, which it sets whole but for the states past
// len(rules). periods are the fixed rules' (fillPeriods).
func parseDecision(rules []Rule, periods *[MaxRules]span, v []int64, d *Decision) error {
	if len(v) != 1+3*len(rules) {
		return fmt.Errorf("script reply has %d values; want %d", len(v), 1+3*len(rules))
	}
	d.Allowed, d.Degraded, d.Why, d.Seq = v[0] == 1, false, "", 0
	d.N = len(rules)
	for i, r := range rules {
		st := &d.Rules[i]
		st.Limit, st.Window = r.Limit, r.Window
		if r.algo() == algoFixed {
			st.Window = micros(periods[i].end - periods[i].start)
		}
		st.Remaining = v[1+3*i]
		st.Reset = time.Duration(v[2+3*i]) * time.Microsecond
		st.RetryAfter = time.Duration(v[3+3*i]) * time.Microsecond
		if r.Lease && st.RetryAfter > 0 {
			st.RetryAfter = RetryLease // a lease is given back when a response ends
		}
		st.Shadow, st.Lease = r.Shadow(), r.Lease
		st.Undecided = false
	}
	return nil
}

// ReplicaDenies asks the replica, within budget, whether a rule of req is
// already full there, without recording. A replica never shows more than
// the primary holds, so its denial is always right; its room proves
// nothing (ok false). In standalone the primary itself is asked: a read
// still runs where the write was refused (OOM, NOREPLICAS), so a tenant
// over its limit stays denied.
func (s *RedisStore) ReplicaDenies(_ context.Context, req Request, budget time.Duration) (Decision, bool, error) {
	if len(req.Rules) == 0 || len(req.Rules) > MaxRules || !logOnly(req.Rules) {
		return Decision{}, false, nil // peek.lua reads sliding logs only
	}
	if s.cluster && mixedTags(req.Rules) {
		return Decision{}, false, nil // keys in two slots: no one call reads them
	}
	args := make([]any, 1, 1+5*len(req.Rules))
	args[0] = s.instance
	for _, r := range req.Rules {
		args = append(args, r.Window.Microseconds(), r.Limit, r.CostOrOne(), modeArg(r), 0) // no pending entries
	}
	// Routed by the rules' tag: a scope's, when they are a shared limit's.
	routed := Request{Tenant: ruleTag(req.Tenant, req.Rules[0]), Rules: req.Rules}
	keys := withHighWater(s.keys(req.Tenant, req.Rules, time.Time{}))
	o, err := s.peek(routed, keys, args, budget)
	if errors.Is(err, errNoClusterReplica) {
		o, err = s.peekOn(s.primary, routed, keys, args, budget) // as go-redis would: the slot has no replica ready
	}
	if err != nil {
		return Decision{}, false, fmt.Errorf("ask the replica for %s: %w", req.Tenant, err)
	}
	defer o.release()
	d := Decision{}
	parsePeek(req.Rules, o.reply[:o.n], &d)
	return d, !d.Allowed && !leaseOnly(req.Rules, &d), nil
}

// parsePeek reads peek.lua's reply, whose length the caller checked:
// {allowed, then per rule: remaining, reset, retry, visible}. The retry is
// the script's raw value (see retryAfter). It sets d whole but for the
// states past len(rules).
func parsePeek(rules []Rule, v []int64, d *Decision) {
	d.Allowed, d.Degraded, d.Why, d.N, d.Seq = v[0] == 1, false, "", len(rules), 0
	for i, r := range rules {
		d.Rules[i] = RuleState{Limit: r.Limit, Window: r.Window, Remaining: v[1+4*i], Shadow: r.Shadow(), Lease: r.Lease,
			Reset: time.Duration(v[2+4*i]) * time.Microsecond, RetryAfter: time.Duration(v[3+4*i]) * time.Microsecond}
	}
}
