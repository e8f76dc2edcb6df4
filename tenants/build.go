package tenants

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/l1gw/l1gw/internal/configkey"
	"github.com/l1gw/l1gw/limiter"
)

type builder struct {
	plans    map[string]Plan
	leaseTTL time.Duration // Options.LeaseTTL
	errs     configkey.Errors
	stats    bool // create the tenants' metric handles (Build, not Check)
	// labelled counts the tenants given a metric label of their own, up to
	// metricsMax (0: no cap); the others share other.
	labelled, metricsMax int
	other                *Stats
	// inRegistry: the specs being built are registry records, which may
	// have no keys yet (the admin API issues them).
	inRegistry bool
	// stored: the registry's records as read from Redis, accepted when
	// written. They keep serving under the checks they were written
	// under: those added since (a sliding log's cost, a rule named
	// concurrency, a shadowed route, a route's prefix and methods, a key
	// with white space, the zone Local) apply to the file and to new
	// writes only, so an upgrade drops no tenant that served.
	stored bool
	// zones caches time zones checked (nil: a valid name), so 100 000
	// registry rules read the zone database once per name.
	zones map[string]error
}

func (b *builder) fail(path, format string, args ...any) {
	b.errs.Add(path, format, args...)
}

// Build checks the tenants and plans and returns the snapshot they make.
// Every problem is reported, each as a *configkey.Error naming its key.
// upstreamKnown reports whether an upstream name exists.
func Build(opts Options, plans map[string]Plan, specs []Spec, upstreamKnown func(string) bool) (*Snapshot, error) {
	return build(opts, plans, specs, nil, upstreamKnown, true)
}

// BuildWith is Build with the tenants and plans of a registry merged over
// the file's (tenants.source both; only the registry's with no file specs
// for redis). The file's part is checked as Build checks it, and any
// problem fails the build. A registry entry that is invalid, or that
// conflicts with the file (which wins) or another entry, is left out and
// reported by the snapshot's Problems: one bad record never stops the
// others from serving.
func BuildWith(opts Options, plans map[string]Plan, specs []Spec, reg *Registry, upstreamKnown func(string) bool) (*Snapshot, error) {
	return build(opts, plans, specs, reg, upstreamKnown, true)
}

// Check reports what Build would, without its side effects: no tenant's
// metrics are created. Config validation (check-config) uses it.
func Check(opts Options, plans map[string]Plan, specs []Spec, upstreamKnown func(string) bool) error {
	_, err := build(opts, plans, specs, nil, upstreamKnown, false)
	return err
}

// CheckRules checks rules as a plan's are checked, each problem a
// *configkey.Error under path (say, upstreams.main.limits): the rules of
// shared limits.
func CheckRules(path string, rules []limiter.Rule) error {
	b := &builder{}
	b.rules(path, rules)
	if len(b.errs) == 0 {
		return nil
	}
	return errors.Join(b.errs...)
}

func build(opts Options, plans map[string]Plan, specs []Spec, reg *Registry, upstreamKnown func(string) bool, stats bool) (*Snapshot, error) {
	b := &builder{plans: plans, stats: stats, metricsMax: opts.MetricsMax, leaseTTL: opts.LeaseTTL}
	if opts.Max > 0 && len(specs) > opts.Max {
		// Checked first: nothing is built for a list past the cap.
		b.fail("tenant_list", "got %d tenants; want at most tenants.max (%d)", len(specs), opts.Max)
		return nil, errors.Join(b.errs...)
	}
	names := make([]string, 0, len(plans))
	for name := range plans {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b.plan("plans."+name, plans[name])
	}
	s := &Snapshot{
		opts:  opts,
		byKey: make(map[[sha256.Size]byte]keyEntry),
		byID:  make(map[string]*Tenant, len(specs)),
	}
	keyOwner := make(map[[sha256.Size]byte]string)
	for i, spec := range specs {
		path := fmt.Sprintf("tenant_list[%d]", i)
		t := b.tenant(path, spec, upstreamKnown)
		if t == nil {
			continue
		}
		if _, dup := s.byID[t.ID]; dup {
			b.fail(path+".id", "tenant %q is defined twice", t.ID)
			continue
		}
		if b.stats {
			t.Stats = b.statsFor(t.ID)
		}
		s.byID[t.ID] = t
		for _, d := range b.keyDigests(path, spec) {
			if owner, dup := keyOwner[d.sum]; dup && owner == t.ID {
				b.fail(d.path, "this key is given twice to this tenant (keys, key_hashes and retiring_keys take each key once)")
				continue
			} else if dup {
				b.fail(d.path, "this key also belongs to tenant %q", owner)
				continue
			}
			keyOwner[d.sum] = t.ID
			s.byKey[d.sum] = keyEntry{t: t, expires: d.expires}
		}
	}
	if reg != nil && len(b.errs) == 0 {
		b.registry(s, reg, keyOwner, upstreamKnown)
	}
	b.anonymous(s, opts)
	if len(b.errs) > 0 {
		return nil, errors.Join(b.errs...)
	}
	return s, nil
}

func (b *builder) anonymous(s *Snapshot, opts Options) {
	switch opts.Unknown {
	case UnknownReject:
	case UnknownAnonymous:
		plan, ok := b.plans[opts.AnonymousPlan]
		if !ok {
			b.fail("tenants.anonymous_plan", "unknown plan %q (tenants.unknown is anonymous)", opts.AnonymousPlan)
			return
		}
		bits := opts.AnonymousIPv6Prefix
		switch {
		case bits == 0:
			bits = 64
		case bits < 0 || bits > 128:
			b.fail("tenants.anonymous_ipv6_prefix", "got %d; want 1-128 (128: every address on its own)", bits)
			return
		}
		s.anonymous = &Tenant{ID: AnonymousID, Plan: opts.AnonymousPlan, rules: b.withLease(plan.Limits, plan), v6bits: bits, anon: newAnonKeys()}
		if b.stats {
			s.anonymous.Stats = NewStats(AnonymousID)
		}
	default:
		b.fail("tenants.unknown", "got %q; want reject or anonymous", opts.Unknown)
	}
}

func (b *builder) tenant(path string, spec Spec, upstreamKnown func(string) bool) *Tenant {
	ok := true
	switch {
	case !configkey.ValidName(spec.ID):
		b.fail(path+".id", "%s", configkey.BadName(spec.ID))
		ok = false
	case spec.ID == AnonymousID || spec.ID == UnknownID:
		b.fail(path+".id", "%q is reserved", spec.ID)
		ok = false
	case strings.Trim(spec.ID, ".") == "":
		// "." and ".." would be normalised out of /v1/tenants/{id}/… URLs.
		b.fail(path+".id", "got %q; want at least one character other than .", spec.ID)
		ok = false
	}
	plan, found := b.plans[spec.Plan]
	if !found {
		b.fail(path+".plan", "unknown plan %q", spec.Plan)
		ok = false
	}
	if spec.Upstream != "" && !upstreamKnown(spec.Upstream) {
		b.fail(path+".upstream", "unknown upstream %q", spec.Upstream)
		ok = false
	}
	if len(spec.Keys)+len(spec.KeyHashes)+len(spec.RetiringKeys) == 0 && !b.inRegistry {
		b.fail(path, "tenant %q has no keys or key_hashes", spec.ID)
		ok = false
	}
	b.rules(path+".limits", spec.Limits)
	if found && plan.Concurrency > 0 && hasRule(spec.Limits, ConcurrencyRule) && !b.stored {
		b.fail(path+".limits", "a rule named %q, and plan %q's concurrency limit is counted under that name: rename the rule", ConcurrencyRule, spec.Plan)
		ok = false
	}
	base := b.withLease(mergeRules(plan.Limits, spec.Limits), plan)
	if len(base) > limiter.MaxTenantRules {
		b.fail(path+".limits", "%d rules apply to this tenant; at most %d", len(base), limiter.MaxTenantRules)
		ok = false
	}
	t := &Tenant{ID: spec.ID, Plan: spec.Plan, Upstream: spec.Upstream, rules: base}
	var routesOK bool
	t.routes, routesOK = b.routes(path, spec.Routes, base)
	t.byMethod = slices.ContainsFunc(t.routes, func(r route) bool { return len(r.methods) > 0 })
	ok = ok && routesOK
	if !ok {
		return nil
	}
	return t
}

// maxTenantRoutes bounds a tenant's routes (tenant_list[].routes, a
// registry record's), checked on a write: a record at the registry's
// 64 KiB cap could hold 590, some 2.4 MiB of rules on every gateway.
const maxTenantRoutes = 100

// routes builds a tenant's routes over its base rules, longest prefix
// first (the first match is the most specific); ok is false when one is
// wrong. A rule's name is its count: two routes may share a rule only if
// they define it the same way, or the shorter window's trim would eat the
// longer one's entries.
func (b *builder) routes(path string, specs []RouteSpec, base []limiter.Rule) (routes []route, ok bool) {
	if len(specs) > maxTenantRoutes && !b.stored {
		// Each route holds its own copy of the rules that apply on it:
		// every gateway keeps every tenant's.
		b.fail(path+".routes", "%d routes; at most %d a tenant", len(specs), maxTenantRoutes)
		return nil, false
	}
	ok = true
	routeRules := map[string]limiter.Rule{}
	// headNamed: a route at prefix (in any case) names HEAD itself.
	headNamed := func(prefix string) bool {
		return slices.ContainsFunc(specs, func(rs RouteSpec) bool {
			return strings.EqualFold(rs.PathPrefix, prefix) &&
				slices.ContainsFunc(rs.Methods, func(m string) bool { return strings.EqualFold(m, methodHead) })
		})
	}
	for i, rs := range specs {
		rp := fmt.Sprintf("%s.routes[%d]", path, i)
		if rs.PathPrefix != "" && rs.PathPrefix[0] != '/' && !b.stored {
			b.fail(rp+".path_prefix", "got %q; want a path starting with / (no request path matches it)", rs.PathPrefix)
			ok = false
		}
		for j, m := range rs.Methods {
			if b.stored {
				break
			}
			if m == "" || strings.IndexFunc(m, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') }) >= 0 {
				b.fail(fmt.Sprintf("%s.methods[%d]", rp, j), "got %q; want a method such as GET or POST (letters only)", m)
				ok = false
			}
		}
		b.rules(rp+".limits", rs.Limits)
		own, ownOK := b.routeLease(rp, rs)
		ok = ok && ownOK
		for j, r := range own {
			at := fmt.Sprintf("%s.limits[%d].name", rp, j)
			if r.Lease {
				at = rp + ".name"
			}
			if hasRule(base, r.Name) {
				b.fail(at, "%q is already a limit of the tenant; a route limit needs a name of its own", r.Name)
				ok = false
			}
			if prev, seen := routeRules[r.Name]; seen && prev != r {
				b.fail(at, "%q is defined differently by another route (%s); routes share a rule only with the same limit, window and cost", r.Name, prev)
				ok = false
			}
			routeRules[r.Name] = r
		}
		rules := base // read only: a route without rules of its own shares them
		if len(own) > 0 {
			rules = append(append(make([]limiter.Rule, 0, len(base)+len(own)), base...), own...)
		}
		if len(rules) > limiter.MaxTenantRules {
			b.fail(rp+".limits", "%d rules apply to this route; at most %d", len(rules), limiter.MaxTenantRules)
			ok = false
		}
		rt := route{methods: withHead(upper(rs.Methods), headNamed(rs.PathPrefix)), prefix: []byte(rs.PathPrefix), anyCase: rs.CaseInsensitive, rules: rules}
		for j, earlier := range routes {
			if earlier.shadows(rt) && !b.stored {
				b.fail(rp, "can never apply: %s.routes[%d], written before it, matches every request it would; write the more specific first", path, j)
				ok = false
				break
			}
		}
		routes = append(routes, rt)
	}
	sort.SliceStable(routes, func(i, j int) bool { return len(routes[i].prefix) > len(routes[j].prefix) })
	return routes, ok
}

// shadows reports whether r, tried before o, matches every request o
// would: the same prefix (in any case, when r's is), and every method o
// takes. Routes are tried longest prefix first, then as written.
func (r route) shadows(o route) bool {
	samePrefix := bytes.Equal(r.prefix, o.prefix) && (r.anyCase || !o.anyCase) ||
		r.anyCase && bytes.EqualFold(r.prefix, o.prefix)
	if !samePrefix {
		return false
	}
	if len(r.methods) == 0 {
		return true
	}
	if len(o.methods) == 0 {
		return false
	}
	for _, m := range o.methods {
		if !slices.Contains(r.methods, m) {
			return false
		}
	}
	return true
}

func (b *builder) rules(path string, rules []limiter.Rule) {
	if len(rules) > limiter.MaxTenantRules {
		b.fail(path, "%d rules; at most %d", len(rules), limiter.MaxTenantRules)
	}
	for i, r := range rules {
		// Paths are built only for a problem: a registry load checks
		// 100 000 tenants, nearly all fine.
		at := func(field string) string { return path + "[" + strconv.Itoa(i) + "]." + field }
		switch {
		case !configkey.ValidName(r.Name):
			b.fail(at("name"), "%s", configkey.BadName(r.Name))
		case hasRule(rules[:i], r.Name):
			b.fail(at("name"), "rule %q is defined twice", r.Name)
		case limiter.ReservedRuleName(r.Name):
			b.fail(at("name"), "%q is reserved: it comes between the tenant and another rule's name in Redis keys, where two rules' keys could meet", r.Name)
		}
		if r.Limit <= 0 {
			b.fail(at("limit"), "got %d; want > 0", r.Limit)
		}
		b.algorithm(at, r)
		switch {
		case r.Cost < 0 || r.Cost > limiter.MaxCost:
			b.fail(at("cost"), "got %d; want 1 to %d (2^53; 0 means 1)", r.Cost, int64(limiter.MaxCost))
		case r.Cost > limiter.MaxLogCost && (r.Algorithm == "" || r.Algorithm == limiter.AlgoSlidingLog) && !b.stored:
			b.fail(at("cost"), "got %d; a sliding_log rule's cost is at most %d, since the log keeps a member per unit: weigh heavier requests with algorithm sliding_window or fixed", r.Cost, limiter.MaxLogCost)
		case r.Limit > 0 && r.Cost > r.Limit && !b.stored:
			b.fail(at("cost"), "got %d, above the limit %d: the rule could never admit a request", r.Cost, r.Limit)
		}
		if r.Mode != "" && r.Mode != limiter.RuleEnforce && r.Mode != limiter.RuleShadow {
			b.fail(at("mode"), "got %q; want enforce or shadow", r.Mode)
		}
	}
}

// digest is one key of a tenant: its SHA-256, its key path in the
// config, and when it stops working (Unix ns; 0: never).
type digest struct {
	sum     [sha256.Size]byte
	path    string
	expires int64
	keyID   string // an issued key's ID; "" for the file's keys
}

// keyDigests hashes plain keys and parses key_hashes and retiring_keys.
func (b *builder) keyDigests(path string, spec Spec) []digest {
	out := make([]digest, 0, len(spec.Keys)+len(spec.KeyHashes)+len(spec.RetiringKeys))
	plain := func(p, k string, expires int64) {
		if k == "" {
			b.fail(p, "empty key")
			return
		}
		if strings.IndexFunc(k, func(r rune) bool { return r >= 0x80 }) >= 0 {
			// The gateway refuses a key header or parameter outside ASCII
			// (some servers strip 0x85 and 0xA0 as white space).
			b.fail(p, "a key must be ASCII: requests carrying this one would be refused")
			return
		}
		if strings.IndexFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 && !b.stored {
			// The gateway refuses a Bearer token with white space in it:
			// a server splitting Authorization on it reads another token.
			// Control bytes no header carries.
			b.fail(p, "a key must not hold white space or control bytes: sent as a Bearer token it is refused, and a server splitting on white space would read another key")
			return
		}
		out = append(out, digest{sum: sha256.Sum256([]byte(k)), path: p, expires: expires})
	}
	hashed := func(p, h string, expires int64) {
		d, err := parseDigest(h)
		if err != nil {
			b.fail(p, "%v", err)
			return
		}
		out = append(out, digest{sum: d, path: p, expires: expires})
	}
	for i, k := range spec.Keys {
		plain(fmt.Sprintf("%s.keys[%d]", path, i), k, 0)
	}
	for i, h := range spec.KeyHashes {
		hashed(fmt.Sprintf("%s.key_hashes[%d]", path, i), h, 0)
	}
	for i, r := range spec.RetiringKeys {
		p := fmt.Sprintf("%s.retiring_keys[%d]", path, i)
		switch {
		case r.ExpiresAt.IsZero():
			b.fail(p+".expires_at", "required: when the key stops working (RFC 3339)")
		case r.ExpiresAt.Year() < 2000 || r.ExpiresAt.Year() > 2200:
			// Outside, Unix nanoseconds would wrap (or be 0, "never").
			b.fail(p+".expires_at", "got %s; want a time between the years 2000 and 2200", r.ExpiresAt.Format(time.RFC3339))
		case (r.Key == "") == (r.KeyHash == ""):
			b.fail(p, "want one of key and key_hash")
		case r.Key != "":
			plain(p+".key", r.Key, r.ExpiresAt.UnixNano())
		default:
			hashed(p+".key_hash", r.KeyHash, r.ExpiresAt.UnixNano())
		}
	}
	return out
}

var errNotDigest = errors.New("want sha256:<64 lower-case hex digits> (l1gw hash-key prints it for a key); the value is not shown, in case it is a plain key")

func parseDigest(s string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	hexPart, ok := strings.CutPrefix(s, "sha256:")
	// The value is not quoted back: a plain key pasted here would end up
	// in logs and API answers.
	if !ok {
		return d, errNotDigest
	}
	// Lower case only, one spelling per key: the registry finds a key's
	// owner by its text, and sha256:ABC… beside sha256:abc… would give
	// one key two tenants.
	n, err := hex.Decode(d[:], []byte(hexPart))
	if err != nil || n != sha256.Size || len(hexPart) != 2*sha256.Size || strings.ContainsAny(hexPart, "ABCDEF") {
		return d, errNotDigest
	}
	return d, nil
}

// HashKey returns the "sha256:<hex>" form of a plain key, for key_hashes.
func HashKey(key string) string {
	d := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(d[:])
}

// plan checks a plan's rules and concurrency; path is plans.<name>.
func (b *builder) plan(path string, p Plan) {
	b.rules(path+".limits", p.Limits)
	if p.Concurrency < 0 || p.Concurrency > MaxConcurrency {
		b.fail(path+".concurrency", "got %d; want 0 (no cap) to %d", p.Concurrency, MaxConcurrency)
	}
	if p.Concurrency > 0 && len(p.Limits) >= limiter.MaxTenantRules {
		b.fail(path+".concurrency", "the plan has %d rules already; with its concurrency limit at most %d", len(p.Limits), limiter.MaxTenantRules)
	}
	if p.Concurrency > 0 && hasRule(p.Limits, ConcurrencyRule) && !b.stored {
		b.fail(path+".limits", "a rule named %q, and the plan's concurrency limit is counted under that name: rename the rule", ConcurrencyRule)
	}
}

// routeLease is the route's limits plus, for a route with a
// concurrency limit, its Lease rule named rs.Name (a new slice, last); ok
// is false when its concurrency or name is wrong. path is the route's.
func (b *builder) routeLease(path string, rs RouteSpec) (rules []limiter.Rule, ok bool) {
	if rs.Concurrency == 0 {
		if rs.Name != "" {
			b.fail(path+".name", "set without concurrency: it names the route's concurrency limit")
			return rs.Limits, false
		}
		return rs.Limits, true
	}
	ok = true
	if rs.Concurrency < 0 || rs.Concurrency > MaxConcurrency {
		b.fail(path+".concurrency", "got %d; want 0 (no cap) to %d", rs.Concurrency, MaxConcurrency)
		ok = false
	}
	if !configkey.ValidName(rs.Name) {
		b.fail(path+".name", "required with concurrency, it names the concurrency limit: %s", configkey.BadName(rs.Name))
		ok = false
	}
	return b.appendLease(rs.Limits, rs.Name, rs.Concurrency), ok
}

// withLease is rules plus, for a plan with a concurrency limit, its Lease
// rule (ConcurrencyRule): a new slice, last.
func (b *builder) withLease(rules []limiter.Rule, p Plan) []limiter.Rule {
	if p.Concurrency <= 0 {
		return rules
	}
	return b.appendLease(rules, ConcurrencyRule, p.Concurrency)
}

// appendLease is rules plus a Lease rule named name capping n in flight,
// its leases living the lease TTL: a new slice, the lease last.
func (b *builder) appendLease(rules []limiter.Rule, name string, n int64) []limiter.Rule {
	ttl := b.leaseTTL
	if ttl <= 0 {
		ttl = defaultLeaseTTL
	}
	lease := limiter.Rule{Name: name, Limit: n, Window: ttl, Lease: true}
	return append(rules[:len(rules):len(rules)], lease)
}

// defaultLeaseTTL applies where Options.LeaseTTL is unset.
const defaultLeaseTTL = time.Minute

// mergeRules is plan plus extra; an extra rule replaces the plan's rule of
// the same name, whatever either's mode: a tenant can shadow a plan's
// rule, or enforce a plan's shadow rule, by redefining it.
func mergeRules(plan, extra []limiter.Rule) []limiter.Rule {
	out := make([]limiter.Rule, 0, len(plan)+len(extra))
	for _, r := range plan {
		if !hasRule(extra, r.Name) {
			out = append(out, r)
		}
	}
	return append(out, extra...)
}

func hasRule(rules []limiter.Rule, name string) bool {
	for _, r := range rules {
		if r.Name == name {
			return true
		}
	}
	return false
}

// methodHead is the method HEAD.
const methodHead = "HEAD"

// withHead adds HEAD to methods that take GET, unless headNamed (a route
// of the tenant at the same prefix names HEAD itself): a HEAD runs the
// GET's handler at the upstream (RFC 9110 §9.3.2), so a GET's limit must
// count it too, or a HEAD walks around it.
func withHead(methods []string, headNamed bool) []string {
	if headNamed || !slices.Contains(methods, "GET") {
		return methods
	}
	return append(methods, methodHead)
}

func upper(ms []string) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = strings.ToUpper(m)
	}
	return out
}

// statsFor returns the metric handles of tenant id: its own while fewer
// than metricsMax tenants have theirs, else the ones shared under OtherID.
func (b *builder) statsFor(id string) *Stats {
	if b.metricsMax <= 0 || b.labelled < b.metricsMax {
		b.labelled++
		return NewStats(id)
	}
	if b.other == nil {
		b.other = NewStats(OtherID)
	}
	return b.other
}
