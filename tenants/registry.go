package tenants

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l1gw/l1gw/internal/configkey"
)

// Registry is the tenants and plans of the Redis registry
// (tenants.source redis or both), as BuildWith merges them.
type Registry struct {
	// Version is the registry's version counter when it was read.
	Version int64
	// Plans are the registry's plans, by name.
	Plans map[string]Plan
	// Tenants are the registry's tenants, in ID order.
	Tenants []Record
	// Bad are the entries that could not be read (their JSON does not
	// decode); the snapshot reports them with its Problems.
	Bad []Problem
	// Use, if not nil, gathers when each issued key was last used.
	Use *KeyUse
}

// Record is one tenant of the registry: its spec in the config file's
// field names, and the keys the admin API issued it.
type Record struct {
	Spec
	// Issued are the keys issued through the admin API, as digests.
	Issued []IssuedKey `json:"issued_keys,omitempty"`
}

// IssuedKey is a key issued by the admin API. Only its digest is kept:
// the plain key is shown once, to the caller that asked for it.
type IssuedKey struct {
	// KeyID names the key in the API; it is not the key.
	KeyID string `json:"key_id"`
	// KeyHash is "sha256:<64 hex>" of the key.
	KeyHash   string    `json:"key_hash"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the key stops working; zero: never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Problem kinds.
const (
	// ProblemConflict: the entry's ID or a key is the file's (which wins)
	// or another entry's, or the entry is past tenants.max.
	ProblemConflict = "conflict"
	// ProblemInvalid: the entry does not build (a bad rule, an unknown
	// plan …).
	ProblemInvalid = "invalid"
)

// Problem is a registry entry left out of a snapshot, and why.
type Problem struct {
	// Kind is ProblemConflict or ProblemInvalid.
	Kind string `json:"kind"`
	// Object is "tenant" or "plan".
	Object string `json:"object"`
	Name   string `json:"name"`
	Detail string `json:"detail"`
}

// Problems are the registry entries the snapshot left out.
func (s *Snapshot) Problems() []Problem { return s.problems }

// RegistryVersion is the version of the registry the snapshot was built
// with; 0 without one.
func (s *Snapshot) RegistryVersion() int64 { return s.regVersion }

// registry merges reg into s: its plans (the file's win), then its
// tenants, each left out on a problem of its own.
func (b *builder) registry(s *Snapshot, reg *Registry, keyOwner map[[sha256.Size]byte]string, upstreamKnown func(string) bool) {
	s.regVersion = reg.Version
	s.problems = append(s.problems, reg.Bad...)
	b.stored = true
	defer func() { b.stored = false }()
	plans := maps.Clone(b.plans)
	if plans == nil {
		plans = map[string]Plan{}
	}
	for _, name := range slices.Sorted(maps.Keys(reg.Plans)) {
		if _, file := b.plans[name]; file {
			s.problems = append(s.problems, Problem{ProblemConflict, "plan", name, "the config file defines this plan; the file's serves"})
			continue
		}
		if err := b.try(func() {
			if !configkey.ValidName(name) {
				b.fail("name", "%s", configkey.BadName(name))
			}
			b.plan("plan", reg.Plans[name])
		}); err != nil {
			s.problems = append(s.problems, Problem{ProblemInvalid, "plan", name, err.Error()})
			continue
		}
		plans[name] = reg.Plans[name]
	}
	b.plans = plans
	b.inRegistry = true
	defer func() { b.inRegistry = false }()
	if reg.Use != nil {
		reg.Use.mu.Lock() // once, not per key: the build is the only writer
		defer reg.Use.mu.Unlock()
	}
	for _, rec := range reg.Tenants {
		if p, ok := b.record(s, rec, reg.Use, keyOwner, upstreamKnown); !ok {
			s.problems = append(s.problems, p)
		}
	}
}

// record adds one registry tenant to s, or says why it cannot.
func (b *builder) record(s *Snapshot, rec Record, use *KeyUse, keyOwner map[[sha256.Size]byte]string, upstreamKnown func(string) bool) (Problem, bool) {
	problem := func(kind, format string, args ...any) (Problem, bool) {
		return Problem{kind, "tenant", rec.ID, fmt.Sprintf(format, args...)}, false
	}
	if _, file := s.byID[rec.ID]; file {
		return problem(ProblemConflict, "the config file, or an earlier record, defines this tenant; the first serves")
	}
	if max := s.opts.Max; max > 0 && len(s.byID) >= max {
		return problem(ProblemConflict, "past tenants.max (%d)", max)
	}
	var t *Tenant
	var digests []digest
	err := b.try(func() {
		t = b.tenant("tenant", rec.Spec, upstreamKnown)
		digests = append(b.keyDigests("tenant", rec.Spec), b.issued(rec.Issued)...)
	})
	if err != nil {
		return problem(ProblemInvalid, "%v", err)
	}
	for _, d := range digests {
		if owner, dup := keyOwner[d.sum]; dup {
			return problem(ProblemConflict, "%s: this key also belongs to tenant %q", d.path, owner)
		}
	}
	if b.stats {
		t.Stats = b.statsFor(t.ID)
	}
	s.byID[t.ID] = t
	for _, d := range digests {
		keyOwner[d.sum] = t.ID
		e := keyEntry{t: t, expires: d.expires}
		if d.keyID != "" && use != nil {
			e.used = use.clock(d.keyID)
		}
		s.byKey[d.sum] = e
	}
	return Problem{}, true
}

// issued parses a record's issued keys.
func (b *builder) issued(keys []IssuedKey) []digest {
	out := make([]digest, 0, len(keys))
	for i, k := range keys {
		p := func(field string) string { return "tenant.issued_keys[" + strconv.Itoa(i) + "]." + field }
		d, err := parseDigest(k.KeyHash)
		switch {
		case err != nil:
			b.fail(p("key_hash"), "%v", err)
		case !configkey.ValidName(k.KeyID):
			b.fail(p("key_id"), "%s", configkey.BadName(k.KeyID))
		case !k.ExpiresAt.IsZero() && (k.ExpiresAt.Year() < 2000 || k.ExpiresAt.Year() > 2200):
			b.fail(p("expires_at"), "got %s; want a time between the years 2000 and 2200", k.ExpiresAt.Format(time.RFC3339))
		default:
			var expires int64
			if !k.ExpiresAt.IsZero() {
				expires = k.ExpiresAt.UnixNano()
			}
			out = append(out, digest{sum: d, path: "tenant.issued_keys", expires: expires, keyID: k.KeyID})
		}
	}
	return out
}

// try runs f and returns the problems it recorded, removing them from b:
// a registry entry's problems are its own.
func (b *builder) try(f func()) error {
	mark := len(b.errs)
	f()
	if len(b.errs) == mark {
		return nil
	}
	err := errors.Join(b.errs[mark:]...)
	b.errs = b.errs[:mark]
	return err
}

// CheckRecord checks one registry tenant as BuildWith would build it,
// against plans (the file's and the registry's) and the upstreams. Each
// problem is a *configkey.Error whose path is the field in the record's
// JSON: "plan", "limits[0].window".
func CheckRecord(rec Record, plans map[string]Plan, upstreamKnown func(string) bool) error {
	return checkRecord(&builder{plans: plans, inRegistry: true}, rec, upstreamKnown)
}

// CheckStoredRecord is CheckRecord for a record already stored, as the
// snapshot builds it: under the checks it was written under. A change to
// its plan is refused only when the snapshot would drop the tenant.
func CheckStoredRecord(rec Record, plans map[string]Plan, upstreamKnown func(string) bool) error {
	return checkRecord(&builder{plans: plans, inRegistry: true, stored: true}, rec, upstreamKnown)
}

func checkRecord(b *builder, rec Record, upstreamKnown func(string) bool) error {
	b.tenant("tenant", rec.Spec, upstreamKnown)
	digests := append(b.keyDigests("tenant", rec.Spec), b.issued(rec.Issued)...)
	seen := map[[sha256.Size]byte]bool{}
	for _, d := range digests {
		if seen[d.sum] {
			b.fail(d.path, "the tenant has this key twice")
		}
		seen[d.sum] = true
	}
	return b.relative("tenant")
}

// CheckPlan checks one registry plan; each problem's path is the field
// in the plan's JSON.
func CheckPlan(name string, plan Plan) error {
	b := &builder{}
	if !configkey.ValidName(name) {
		b.fail("plan.name", "%s", configkey.BadName(name))
	}
	b.plan("plan", plan)
	return b.relative("plan")
}

// relative returns b's problems with their paths made relative to root.
func (b *builder) relative(root string) error {
	for _, err := range b.errs {
		var ke *configkey.Error
		if errors.As(err, &ke) {
			ke.Path = strings.TrimPrefix(strings.TrimPrefix(ke.Path, root), ".")
		}
	}
	return errors.Join(b.errs...)
}

// KeyUse gathers when each issued key was last used, in memory: the
// request path only stores a time in the key's clock; the registry
// flushes them to Redis in the background.
type KeyUse struct {
	mu      sync.Mutex
	clocks  map[string]*atomic.Int64 // key ID → Unix seconds of the last use
	flushed map[string]int64         // what the last Changed returned
}

// NewKeyUse returns an empty KeyUse.
func NewKeyUse() *KeyUse {
	return &KeyUse{clocks: map[string]*atomic.Int64{}, flushed: map[string]int64{}}
}

// clock returns the clock of a key; u.mu is held.
func (u *KeyUse) clock(keyID string) *atomic.Int64 {
	c, ok := u.clocks[keyID]
	if !ok {
		c = new(atomic.Int64)
		u.clocks[keyID] = c
	}
	return c
}

// Changed returns the keys used since they were last Flushed, with the
// Unix second of their last use.
func (u *KeyUse) Changed() map[string]int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string]int64{}
	for id, c := range u.clocks {
		if v := c.Load(); v != 0 && v != u.flushed[id] {
			out[id] = v
		}
	}
	return out
}

// Flushed records that used (from Changed) was written.
func (u *KeyUse) Flushed(used map[string]int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, v := range used {
		if _, ok := u.clocks[id]; ok {
			u.flushed[id] = v
		}
	}
}

// Forget drops the clocks of keys not in keep (revoked, or their tenant
// deleted); call it with the key IDs of the snapshot in force.
func (u *KeyUse) Forget(keep func(keyID string) bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id := range u.clocks {
		if !keep(id) {
			delete(u.clocks, id)
			delete(u.flushed, id)
		}
	}
}

// touch records a use at sec, the Unix second; at most one store a second.
func touch(c *atomic.Int64, sec int64) {
	if c.Load() < sec {
		c.Store(sec)
	}
}

// KeyOwner returns the tenant a key digest ("sha256:<hex>") belongs to in
// s, if any.
func (s *Snapshot) KeyOwner(keyHash string) (string, bool) {
	d, err := parseDigest(keyHash)
	if err != nil {
		return "", false
	}
	e, ok := s.byKey[d]
	if !ok {
		return "", false
	}
	return e.t.ID, true
}

// OnPlan returns the IDs of up to n tenants of s on plan, in ID order.
func (s *Snapshot) OnPlan(plan string, n int) []string {
	var ids []string
	for id, t := range s.byID {
		if t.Plan == plan {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) > n {
		ids = ids[:n]
	}
	return ids
}
