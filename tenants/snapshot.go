package tenants

import (
	"bytes"
	"crypto/sha256"
	"hash/maphash"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// AnonymousID is the tenant ID of anonymous callers in metrics and logs.
const AnonymousID = "anonymous"

// OtherID is the tenant label of the tenants past tenants.metrics_max in
// metrics. It is not a valid tenant ID, so no tenant can be mistaken for
// it.
const OtherID = "(other)"

// Tenant is one resolved tenant: its rules, precomputed per route, and its
// metric handles. A Tenant is immutable once built, but for the anonymous
// tenant's memo of its callers' keys.
type Tenant struct {
	// ID names the tenant.
	ID string
	// Plan names the tenant's plan.
	Plan string
	// Upstream overrides the route's upstream; "" keeps the route's.
	Upstream string
	// Stats are the tenant's metric handles, resolved once.
	Stats *Stats

	rules    []limiter.Rule // plan limits merged with the tenant's own
	routes   []route        // longest prefix first
	byMethod bool           // a route matches by method
	v6bits   int            // the anonymous tenant's: Options.AnonymousIPv6Prefix
	anon     *anonKeys      // the anonymous tenant's: AnonymousKey's strings
}

// anonKeys holds the strings AnonymousKey made, by themselves, so that a
// caller's key is made once, not at every request: the limiter takes a
// string. It is sharded by the key's hash, so that callers new to it
// (one rotating through its addresses, say) take one shard's lock, not
// all of them. A shard keeps two generations: when the current one is
// full it becomes the old one, and a key found in the old one moves to
// the current. So a flood of new callers through a shard drops the keys
// of callers gone quiet, but not that of one who calls again within a
// generation's worth (anonGeneration) of new callers in its shard.
type anonKeys struct {
	seed   maphash.Seed
	shards [anonShards]anonShard
}

type anonShard struct {
	mu       sync.RWMutex
	cur, old map[string]string
}

const (
	// anonKeysMax bounds anonKeys: 65 536 callers' keys, of at most 48
	// bytes each.
	anonKeysMax = 1 << 16
	anonShards  = 64
	// anonGeneration is how many keys a shard's generation holds.
	anonGeneration = anonKeysMax / anonShards / 2
)

func newAnonKeys() *anonKeys { return &anonKeys{seed: maphash.MakeSeed()} }

// intern returns b as a string, made once while it stays in k.
func (k *anonKeys) intern(b []byte) string {
	sh := &k.shards[maphash.Bytes(k.seed, b)%anonShards]
	sh.mu.RLock()
	s, ok := sh.cur[string(b)]
	old := false
	if !ok {
		s, old = sh.old[string(b)]
	}
	sh.mu.RUnlock()
	if ok {
		return s
	}
	if !old {
		s = string(b)
	}
	sh.mu.Lock()
	if len(sh.cur) >= anonGeneration || sh.cur == nil {
		sh.old, sh.cur = sh.cur, make(map[string]string)
	}
	sh.cur[s] = s
	sh.mu.Unlock()
	return s
}

// AnonymousKey is what the limiter counts an anonymous caller at address a
// under: "anon:" and the address (an IPv4-mapped one as IPv4), or for
// IPv6 its network of Options.AnonymousIPv6Prefix bits, as in
// "anon:2001:db8:1:2::/64".
func (t *Tenant) AnonymousKey(a netip.Addr) string {
	a = a.Unmap()
	var buf [64]byte
	b := append(buf[:0], "anon:"...)
	switch {
	case !a.IsValid():
		b = append(b, "unknown"...)
	case a.Is6() && t.v6bits > 0 && t.v6bits < 128:
		p, _ := a.WithZone("").Prefix(t.v6bits) // Build keeps v6bits in range
		b = p.AppendTo(b)
	default:
		b = a.WithZone("").AppendTo(b)
	}
	if t.anon == nil {
		return string(b)
	}
	return t.anon.intern(b)
}

// MethodsMatter reports whether some route of t matches by method: only
// then may two methods on one path get different rules.
func (t *Tenant) MethodsMatter() bool { return t.byMethod }

// SameRules reports whether methods a and b on path get the same rules.
func (t *Tenant) SameRules(a, b, path []byte) bool {
	return slices.Equal(t.Rules(a, path), t.Rules(b, path))
}

type route struct {
	methods []string
	prefix  []byte
	anyCase bool           // the prefix matches in any case
	rules   []limiter.Rule // the tenant's rules plus the route's
}

// hasPathPrefix says whether path starts with prefix, in any case when
// anyCase (ASCII case folding, as paths are compared).
func hasPathPrefix(path, prefix []byte, anyCase bool) bool {
	if !anyCase {
		return bytes.HasPrefix(path, prefix)
	}
	return len(path) >= len(prefix) && bytes.EqualFold(path[:len(prefix)], prefix)
}

// Anonymous reports whether t stands for callers without a known key.
func (t *Tenant) Anonymous() bool { return t.ID == AnonymousID }

// Rules returns the rules that apply to a request: the tenant's, plus those
// of the most specific route that matches method and path. It does not
// allocate.
func (t *Tenant) Rules(method, path []byte) []limiter.Rule {
	for i := range t.routes {
		r := &t.routes[i]
		if hasPathPrefix(path, r.prefix, r.anyCase) && r.matchMethod(method) {
			return r.rules
		}
	}
	return t.rules
}

// AllRules is every rule of the tenant: its own and its routes', each
// name once.
func (t *Tenant) AllRules() []limiter.Rule {
	out := append([]limiter.Rule{}, t.rules...)
	for _, r := range t.routes {
		for _, rule := range r.rules[len(t.rules):] {
			if !hasRule(out, rule.Name) {
				out = append(out, rule)
			}
		}
	}
	return out
}

func (r *route) matchMethod(method []byte) bool {
	if len(r.methods) == 0 {
		return true
	}
	for _, m := range r.methods {
		if string(method) == m {
			return true
		}
	}
	return false
}

// Snapshot is an immutable tenant table.
type Snapshot struct {
	opts      Options
	byKey     map[[sha256.Size]byte]keyEntry
	byID      map[string]*Tenant
	anonymous *Tenant // nil unless Options.Unknown is anonymous
	// problems are the registry entries left out; regVersion the
	// registry's version (BuildWith).
	problems   []Problem
	regVersion int64
}

// Len is the number of configured tenants.
func (s *Snapshot) Len() int { return len(s.byID) }

// ByID returns the tenant with the given ID.
func (s *Snapshot) ByID(id string) (*Tenant, bool) {
	t, ok := s.byID[id]
	return t, ok
}

// Options returns the options the snapshot was built with.
func (s *Snapshot) Options() Options { return s.opts }

// Resolution says how a caller was resolved.
type Resolution int

// Resolutions.
const (
	// Resolved: a known key.
	Resolved Resolution = iota
	// AnonymousCaller: no known key, and unknown callers are anonymous.
	AnonymousCaller
	// MissingKey: no key, and unknown callers are rejected.
	MissingKey
	// UnknownKey: a key that no tenant has, and unknown callers are rejected.
	UnknownKey
)

var bearer = []byte("Bearer")

// KeyFrom returns the API key from the configured key header's value or,
// when that is empty, from an "Authorization: Bearer <key>" value.
func KeyFrom(keyHeader, authorization []byte) []byte {
	if len(keyHeader) > 0 {
		return keyHeader
	}
	if key, ok := CutScheme(authorization, bearer); ok && len(key) > 0 {
		return key
	}
	return nil
}

// CutScheme returns the credentials of an Authorization value of scheme
// (in any case), which must be followed by a space or a tab: what an
// upstream splitting on whitespace reads, and ok. It does not allocate.
func CutScheme(authorization, scheme []byte) (credentials []byte, ok bool) {
	n := len(scheme)
	if len(authorization) <= n || !bytes.EqualFold(authorization[:n], scheme) ||
		(authorization[n] != ' ' && authorization[n] != '\t') {
		return nil, false
	}
	return bytes.TrimSpace(authorization[n:]), true
}

// Resolve finds the tenant of an API key. It never waits on anything and
// does not allocate. The tenant is nil for MissingKey and UnknownKey.
func (s *Snapshot) Resolve(key []byte) (*Tenant, Resolution) {
	return s.resolve(key, true)
}

// Peek is Resolve without marking the key used: for a look at what a
// request would get (/v1/simulate), which a key's last use must not show.
func (s *Snapshot) Peek(key []byte) (*Tenant, Resolution) {
	return s.resolve(key, false)
}

func (s *Snapshot) resolve(key []byte, use bool) (*Tenant, Resolution) {
	if len(key) > 0 {
		if e, ok := s.byKey[sha256.Sum256(key)]; ok {
			if e.expires == 0 && e.used == nil {
				return e.t, Resolved
			}
			now := time.Now()
			if e.expires == 0 || now.UnixNano() < e.expires {
				if e.used != nil && use {
					touch(e.used, now.Unix())
				}
				return e.t, Resolved
			}
		}
	}
	if s.anonymous != nil {
		return s.anonymous, AnonymousCaller
	}
	if len(key) == 0 {
		return nil, MissingKey
	}
	return nil, UnknownKey
}

// Expires is when key stops resolving to its tenant by time alone: its
// expires_at (a retiring key's, an issued key's). It is the zero time for
// a key that never expires, and for one s does not know. An open tunnel
// ends then, as the key's next request would be refused.
func (s *Snapshot) Expires(key []byte) time.Time {
	if len(key) == 0 {
		return time.Time{}
	}
	if e, ok := s.byKey[sha256.Sum256(key)]; ok && e.expires != 0 {
		return time.Unix(0, e.expires)
	}
	return time.Time{}
}

// Known reports whether key is a tenant's key, expired or not: a key the
// gateway must not forward when it hides keys.
func (s *Snapshot) Known(key []byte) bool {
	if len(key) == 0 {
		return false
	}
	_, ok := s.byKey[sha256.Sum256(key)]
	return ok
}

// keyEntry is a key's tenant, and when the key stops working (Unix ns; 0:
// never).
type keyEntry struct {
	t       *Tenant
	expires int64
	used    *atomic.Int64 // an issued key's last use (KeyUse); nil for the file's keys
}

// Table holds the live snapshot; readers never block and a new snapshot
// replaces the old one atomically.
type Table struct {
	cur atomic.Pointer[Snapshot]
}

// NewTable returns a table serving s.
func NewTable(s *Snapshot) *Table {
	t := &Table{}
	t.cur.Store(s)
	return t
}

// Load returns the current snapshot.
func (t *Table) Load() *Snapshot { return t.cur.Load() }

// Swap makes s the current snapshot.
func (t *Table) Swap(s *Snapshot) { t.cur.Store(s) }
