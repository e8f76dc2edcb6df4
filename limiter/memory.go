package limiter

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// memoryShards spreads tenants over independent locks.
const memoryShards = 64

// sweepEvery is how often a shard drops tenants with nothing left in any window.
const sweepEvery = 10 * time.Second

// MemoryStore is the in-process sliding-log Store: the embedded default
// (redis.mode: memory). It has the semantics of the Redis store for a single
// gateway instance. Memory per rule is bounded by the rule's limit, and
// tenants idle for longer than their windows are dropped.
type MemoryStore struct {
	now    func() time.Time
	seq    atomic.Uint64 // Decision.Seq of the last admission
	zones  zones
	shards [memoryShards]memShard
	// shared holds the shared limits' counts (Rule.Scope) by scope, under
	// sharedMu, taken after a shard's lock. Their number is the config's:
	// never swept.
	sharedMu sync.Mutex
	shared   map[string]*memTenant
}

type memShard struct {
	mu        sync.Mutex
	tenants   map[string]*memTenant
	lastSweep int64
}

// tenant is the tenant name's state, made (with room for rules logs)
// if sh has none. Called with mu held.
func (sh *memShard) tenant(name string, rules int) *memTenant {
	t := sh.tenants[name]
	if t == nil {
		t = &memTenant{rules: make(map[memKey]*slidingLog, rules)}
		sh.tenants[name] = t
	}
	return t
}

type memTenant struct {
	rules  map[memKey]*slidingLog
	counts map[memKey]*memCount // counter rules; nil until one is decided
}

// memKey names a rule's log: a shadow rule and a Lease rule have their
// own, apart from an enforced rule of the same name.
type memKey struct {
	name   string
	shadow bool
	lease  bool
	algo   algo
}

func memKeyOf(r Rule) memKey { return memKey{r.Name, r.Shadow(), r.Lease, r.algo()} }

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store. now is the clock; nil means time.Now.
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	s := &MemoryStore{now: now, shared: make(map[string]*memTenant)}
	for i := range s.shards {
		s.shards[i].tenants = make(map[string]*memTenant)
	}
	return s
}

// Decide implements Store. It never returns an error for a valid request.
func (s *MemoryStore) Decide(_ context.Context, req Request) (Decision, error) {
	var d Decision
	if len(req.Rules) > MaxRules {
		return d, ErrTooManyRules
	}
	now := s.now().UnixNano()
	sh := &s.shards[tenantHash(req.Tenant)%memoryShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.maybeSweep(now)
	t := sh.tenant(req.Tenant, len(req.Rules))

	if hasScope(req.Rules) {
		s.sharedMu.Lock()
		defer s.sharedMu.Unlock()
	}
	var logs [MaxRules]*slidingLog
	var counts [MaxRules]*memCount
	d.Allowed = true
	for i, r := range req.Rules {
		var over bool
		if r.Counted() {
			counts[i] = s.tenantOf(t, r).count(r)
			over = counts[i].check(s.zones.load(r.Timezone), now, r, &d.Rules[i])
		} else {
			logs[i] = s.tenantOf(t, r).log(r, now)
			if over = r.CostOrOne() > r.Limit-logs[i].used; over { // not used+cost: no overflow near a limit of 2^63
				d.Rules[i].RetryAfter = logs[i].retryAfter(now, r)
			}
		}
		// A shadow rule only says so: it denies nothing.
		d.Allowed = d.Allowed && (!over || r.Shadow())
	}
	d.N = len(req.Rules)
	if d.Allowed {
		d.Seq = s.seq.Add(1)
	}
	for i, r := range req.Rules {
		st := &d.Rules[i]
		st.Limit, st.Shadow, st.Lease = r.Limit, r.Shadow(), r.Lease
		if r.Counted() {
			counts[i].settle(now, r, d.Allowed, st)
			continue
		}
		lg := logs[i]
		if d.Allowed && !st.Denied() {
			lg.push(now, r.CostOrOne(), d.Seq)
		}
		st.Window = r.Window
		st.Remaining = max(r.Limit-lg.used, 0)
		st.Reset = lg.reset(now, r.Window)
	}
	return d, nil
}

// log is r's sliding log, trimmed to now. Called with the shard's mu held.
func (t *memTenant) log(r Rule, now int64) *slidingLog {
	lg := t.rules[memKeyOf(r)]
	if lg == nil {
		lg = &slidingLog{}
		t.rules[memKeyOf(r)] = lg
	}
	lg.trim(now - int64(r.Window))
	return lg
}

// tenantOf is where r counts: t, or for a shared limit its scope's
// entry (sharedMu held).
func (s *MemoryStore) tenantOf(t *memTenant, r Rule) *memTenant {
	if r.Scope == "" {
		return t
	}
	st := s.shared[r.Scope]
	if st == nil {
		st = &memTenant{rules: make(map[memKey]*slidingLog, 1)}
		s.shared[r.Scope] = st
	}
	return st
}

// hasScope reports whether rules hold a shared limit.
func hasScope(rules []Rule) bool {
	for i := range rules {
		if rules[i].Scope != "" {
			return true
		}
	}
	return false
}

// maybeSweep drops tenants whose logs are all empty. Called with mu held.
func (sh *memShard) maybeSweep(now int64) {
	if now-sh.lastSweep < int64(sweepEvery) {
		return
	}
	sh.lastSweep = now
	for id, t := range sh.tenants {
		if t.idle(now) {
			delete(sh.tenants, id)
		}
	}
}

func (t *memTenant) idle(now int64) bool {
	for _, lg := range t.rules {
		if lg.n() > 0 && lg.newest()+lg.window > now {
			return false
		}
	}
	for _, c := range t.counts {
		if c.until > now {
			return false
		}
	}
	return true
}

// tenantHash is FNV-1a over the tenant ID, without allocating; each
// sharded structure reduces it by its own shard count.
func tenantHash(tenant string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(tenant); i++ {
		h ^= uint32(tenant[i])
		h *= 16777619
	}
	return h
}

// slidingLog is one rule's recorded requests, oldest first.
type slidingLog struct {
	entries []logEntry // entries[head:] are live
	head    int
	used    int64 // sum of live costs
	window  int64 // the window last trimmed with, for sweeping
}

type logEntry struct {
	at   int64 // unix nanoseconds
	cost int64
	seq  uint64 // the decision's Seq: a lease is given back by it
}

func (l *slidingLog) n() int           { return len(l.entries) - l.head }
func (l *slidingLog) newest() int64    { return l.entries[len(l.entries)-1].at }
func (l *slidingLog) live() []logEntry { return l.entries[l.head:] }

// trim forgets entries at or before cutoff.
func (l *slidingLog) trim(cutoff int64) {
	for l.head < len(l.entries) && l.entries[l.head].at <= cutoff {
		l.used -= l.entries[l.head].cost
		l.head++
	}
	if l.head == len(l.entries) {
		l.entries, l.head = l.entries[:0], 0
	}
}

func (l *slidingLog) push(now, cost int64, seq uint64) {
	if l.head > 0 && l.head >= len(l.entries)/2 {
		n := copy(l.entries, l.entries[l.head:])
		l.entries, l.head = l.entries[:n], 0
	}
	l.entries = append(l.entries, logEntry{at: now, cost: cost, seq: seq})
	l.used += cost
}

// drop gives back the live entry of decision seq, if there is one: it
// leaves the log at once, moving the shorter side of the log over it, so
// a Lease rule's log holds the leases in flight, at most its limit, and
// not every request of its window.
func (l *slidingLog) drop(seq uint64) bool {
	for i := l.head; i < len(l.entries); i++ {
		if l.entries[i].seq != seq {
			continue
		}
		l.used -= l.entries[i].cost
		if i-l.head < len(l.entries)-1-i {
			copy(l.entries[l.head+1:i+1], l.entries[l.head:i])
			l.head++
		} else {
			copy(l.entries[i:], l.entries[i+1:])
			l.entries = l.entries[:len(l.entries)-1]
		}
		if l.head == len(l.entries) {
			l.entries, l.head = l.entries[:0], 0
		}
		return true
	}
	return false
}

// retryAfter is how long until a request of r's cost fits; the window when
// it never can (cost above the limit).
func (l *slidingLog) retryAfter(now int64, r Rule) time.Duration {
	l.window = int64(r.Window)
	cost := r.CostOrOne()
	if r.Lease {
		return RetryLease
	}
	if cost > r.Limit {
		return r.Window
	}
	freed := int64(0)
	for _, e := range l.live() {
		freed += e.cost
		if cost <= r.Limit-(l.used-freed) { // not used-freed+cost: it can wrap past 2^63-1
			return max(time.Duration(e.at+int64(r.Window)-now), time.Nanosecond)
		}
	}
	return r.Window
}

// reset is how long until the oldest entry leaves the window.
func (l *slidingLog) reset(now int64, window time.Duration) time.Duration {
	l.window = int64(window)
	if l.n() == 0 {
		return 0
	}
	return time.Duration(l.entries[l.head].at + int64(window) - now)
}

// Release gives back the lease of decision seq in tenant's Lease rule r,
// if it is still held (not expired).
func (s *MemoryStore) Release(tenant string, r Rule, seq uint64) {
	released := false
	s.withLeases(tenant, r, func(lg *slidingLog) { released = lg.drop(seq) })
	if released {
		leasesReleased.Inc()
	} else {
		leasesExpired.Inc()
	}
}

// Renew keeps the lease of decision seq in tenant's Lease rule r in its
// window, dated from now: it goes to the log's end, which stays in the
// order of time. A lease no longer held (out of its window, its tenant
// forgotten) is taken again if r has room, as the Redis store does; the
// caller renews a lease only until it gives it back.
func (s *MemoryStore) Renew(tenant string, r Rule, seq uint64) {
	now := s.now().UnixNano()
	var t *memTenant
	if r.Scope != "" {
		s.sharedMu.Lock()
		defer s.sharedMu.Unlock()
		t = s.tenantOf(nil, r)
	} else {
		sh := &s.shards[tenantHash(tenant)%memoryShards]
		sh.mu.Lock()
		defer sh.mu.Unlock()
		t = sh.tenant(tenant, 1)
	}
	lg := t.log(r, now)
	lg.window = int64(r.Window) // a log made here is not swept at once
	cost := r.CostOrOne()
	for _, e := range lg.live() {
		if e.seq == seq {
			cost = e.cost
			lg.drop(seq)
			lg.push(now, cost, seq)
			leasesRenewed.Inc()
			return
		}
	}
	if cost <= r.Limit-lg.used {
		lg.push(now, cost, seq)
		leasesRestored.Inc()
	} else {
		leasesGone.Inc()
	}
}

// withLeases runs f on the log of tenant's Lease rule r, if it has one,
// under its lock.
func (s *MemoryStore) withLeases(tenant string, r Rule, f func(*slidingLog)) {
	var t *memTenant
	if r.Scope != "" {
		s.sharedMu.Lock()
		defer s.sharedMu.Unlock()
		t = s.shared[r.Scope]
	} else {
		sh := &s.shards[tenantHash(tenant)%memoryShards]
		sh.mu.Lock()
		defer sh.mu.Unlock()
		t = sh.tenants[tenant]
	}
	if t != nil {
		if lg := t.rules[memKeyOf(r)]; lg != nil {
			f(lg)
		}
	}
}

// Shard is "": one store decides every tenant.
func (s *MemoryStore) Shard(string) string { return "" }

// ReplicaDenies has nothing to say: memory has no replica.
func (s *MemoryStore) ReplicaDenies(context.Context, Request, time.Duration) (Decision, bool, error) {
	return Decision{}, false, nil
}

// Usage reads each rule's state without recording.
func (s *MemoryStore) Usage(_ context.Context, tenant string, rules []Rule) ([]RuleUsage, error) {
	now := s.now().UnixNano()
	sh := &s.shards[tenantHash(tenant)%memoryShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if hasScope(rules) {
		s.sharedMu.Lock()
		defer s.sharedMu.Unlock()
	}
	out := make([]RuleUsage, len(rules))
	own := sh.tenants[tenant]
	for i, r := range rules {
		out[i].Rule = r
		t := own
		if r.Scope != "" { // a shared limit's count
			t = s.shared[r.Scope]
		}
		if r.Counted() {
			if t != nil && t.counts[memKeyOf(r)] != nil {
				out[i].Used, out[i].Reset = t.counts[memKeyOf(r)].usage(s.zones.load(r.Timezone), now, r)
			}
			continue
		}
		lg := (*slidingLog)(nil)
		if t != nil {
			lg = t.rules[memKeyOf(r)]
		}
		if lg == nil {
			continue
		}
		lg.trim(now - int64(r.Window))
		out[i].Used = lg.used
		out[i].Reset = lg.reset(now, r.Window)
	}
	return out, nil
}

// Reset forgets everything recorded for tenant.
func (s *MemoryStore) Reset(_ context.Context, tenant string, _ []Rule) error {
	sh := &s.shards[tenantHash(tenant)%memoryShards]
	sh.mu.Lock()
	delete(sh.tenants, tenant)
	sh.mu.Unlock()
	return nil
}
