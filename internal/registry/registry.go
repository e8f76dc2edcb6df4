// Package registry is the tenant registry in Redis (tenants.source redis
// or both): its layout, the admin API's reads and writes on the primary,
// and the Syncer that keeps every gateway's snapshot of it current from
// the replica, told of changes by pub/sub and, as a backstop, by polling a
// version counter.
//
// The layout, every key under one hash tag so that a Cluster keeps them in
// one slot and a write is one transaction:
//
//	{<prefix>:registry}:version     string  incremented by every write
//	{<prefix>:registry}:tenants     hash    tenant ID → tenant JSON
//	{<prefix>:registry}:tenant_ids  zset    tenant IDs (score 0), for paging
//	{<prefix>:registry}:plans       hash    plan name → plan JSON
//	{<prefix>:registry}:plan_names  zset    plan names (score 0), for paging
//	{<prefix>:registry}:last_used   hash    key ID → Unix second of last use
//	{<prefix>:registry}:key_owner   hash    key digest → tenant ID (a key has one tenant)
//	{<prefix>:registry}:plan_tenants:<plan>  set  the tenants on a plan
//	{<prefix>:registry}:changed     channel the new version, after each write
//
// Limiter keys are <prefix>:{<tenant>}:<rule>, so no registry key is ever
// a limiter key.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/tenants"
)

// Registry reads and writes the registry of one key prefix.
type Registry struct {
	primary, replica redis.UniversalClient
	keys             layout
}

// layout names the registry's keys.
type layout struct {
	version, tenants, tenantIDs, plans, planNames, lastUsed, keyOwner, changed string
	base                                                                       string
}

// planTenants is the key of the set of a plan's tenants.
func (l layout) planTenants(plan string) string { return l.base + "plan_tenants:" + plan }

func newLayout(prefix string) layout {
	base := "{" + prefix + ":registry}:"
	return layout{version: base + "version", tenants: base + "tenants", tenantIDs: base + "tenant_ids",
		plans: base + "plans", planNames: base + "plan_names", lastUsed: base + "last_used", keyOwner: base + "key_owner",
		changed: base + "changed", base: base}
}

// New returns the registry under prefix (ratelimit.key_prefix): written
// to primary, read by the Syncer from replica (the primary itself where
// the topology has no replicas).
func New(primary, replica redis.UniversalClient, prefix string) *Registry {
	return &Registry{primary: primary, replica: replica, keys: newLayout(prefix)}
}

// scanCount is how many hash fields one HSCAN asks for: a registry of
// 100 000 tenants is read in steps that never hold Redis for long.
const scanCount = 5000

// load reads the whole registry from c. It reads the version first and
// again last, and reads again (up to three times) when a write came in
// between, so the registry it returns is one version's; after three, it
// returns the last read under its first version, which the next sync
// finds behind.
func (r *Registry) load(ctx context.Context, c redis.UniversalClient) (*tenants.Registry, error) {
	var last *tenants.Registry
	for range 3 {
		before, err := version(ctx, c, r.keys.version)
		if err != nil {
			return nil, err
		}
		reg := &tenants.Registry{Version: before, Plans: map[string]tenants.Plan{}}
		err = scanHash(ctx, c, r.keys.plans, func(name, val string) {
			var p NamedPlan
			if err := DecodeStrict([]byte(val), &p); err != nil || p.Name != name {
				detail := "the stored JSON's name is not its field's"
				if err != nil {
					detail = "the stored JSON does not decode: " + err.Error()
				}
				reg.Bad = append(reg.Bad, tenants.Problem{Kind: tenants.ProblemInvalid, Object: "plan", Name: name, Detail: detail})
				return
			}
			reg.Plans[name] = p.Plan
		})
		if err == nil {
			var bad []tenants.Problem
			reg.Tenants, bad, err = r.scanTenants(ctx, c)
			reg.Bad = append(reg.Bad, bad...)
		}
		if err != nil {
			return nil, err
		}
		after, err := version(ctx, c, r.keys.version)
		if err != nil {
			return nil, err
		}
		if after == before {
			return reg, nil
		}
		last = reg
	}
	// Writes keep coming faster than a read: serve what was read, under
	// the version it began at, so that the next sync reads again rather
	// than the copy never moving.
	return last, nil
}

// version reads the version counter; 0 when there is none yet.
func version(ctx context.Context, c redis.Cmdable, key string) (int64, error) {
	v, err := c.Get(ctx, key).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

// scanHash calls f for every field of a hash, read with HSCAN. A field
// seen twice (HSCAN may return one again) is passed once.
func scanHash(ctx context.Context, c redis.UniversalClient, key string, f func(field, val string)) error {
	seen := map[string]bool{}
	return scanBatches(ctx, c, key, func(kv []string) {
		for i := 0; i < len(kv); i += 2 {
			if !seen[kv[i]] {
				seen[kv[i]] = true
				f(kv[i], kv[i+1])
			}
		}
	})
}

// scanBatches calls f with each HSCAN reply of a hash: field, value pairs,
// a field possibly in two of them.
func scanBatches(ctx context.Context, c redis.UniversalClient, key string, f func(kv []string)) error {
	var cursor uint64
	for {
		kv, next, err := c.HScan(ctx, key, cursor, "*", scanCount).Result()
		if err != nil {
			return err
		}
		if len(kv)%2 != 0 {
			return fmt.Errorf("HSCAN %s: an odd reply of %d items", key, len(kv))
		}
		f(kv)
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// scanTenants reads every tenant record, in ID order. The records are
// decoded on every core while the next reply is read: decoding is most of
// a load's time.
func (r *Registry) scanTenants(ctx context.Context, c redis.UniversalClient) ([]tenants.Record, []tenants.Problem, error) {
	n, err := c.HLen(ctx, r.keys.tenants).Result()
	if err != nil {
		return nil, nil, err
	}
	type decoded struct {
		recs []tenants.Record
		bad  []tenants.Problem
	}
	batches, results := make(chan []string, 2), make(chan decoded, 2)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for kv := range batches {
				var d decoded
				d.recs, d.bad = decodeTenants(kv)
				results <- d
			}
		})
	}
	errc := make(chan error, 1)
	go func() {
		errc <- scanBatches(ctx, c, r.keys.tenants, func(kv []string) { batches <- kv })
		close(batches)
		wg.Wait()
		close(results)
	}()
	recs := make([]tenants.Record, 0, n)
	var bad []tenants.Problem
	seen := make(map[string]bool, n)
	for d := range results {
		for _, rec := range d.recs {
			if !seen[rec.ID] {
				seen[rec.ID] = true
				recs = append(recs, rec)
			}
		}
		for _, p := range d.bad {
			if !seen[p.Name] {
				seen[p.Name] = true
				bad = append(bad, p)
			}
		}
	}
	if err := <-errc; err != nil {
		return nil, nil, err
	}
	return sortByID(recs), bad, nil
}

// decodeTenants decodes one HSCAN reply's records.
func decodeTenants(kv []string) (recs []tenants.Record, bad []tenants.Problem) {
	recs = make([]tenants.Record, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		id := kv[i]
		var rec tenants.Record
		// Not strictJSON: the API wrote it, strictly checked; a Decoder
		// per record is a fifth of a 100 000-tenant load.
		if err := json.Unmarshal([]byte(kv[i+1]), &rec); err != nil || rec.ID != id {
			detail := "the stored JSON's id is not its field's"
			if err != nil {
				detail = "the stored JSON does not decode: " + err.Error()
			}
			bad = append(bad, tenants.Problem{Kind: tenants.ProblemInvalid, Object: "tenant", Name: id, Detail: detail})
			continue
		}
		recs = append(recs, rec)
	}
	return recs, bad
}

// sortByID returns recs in ID order, each record moved once (they are
// large: sorting them in place would move each many times).
func sortByID(recs []tenants.Record) []tenants.Record {
	type entry struct {
		id string
		i  int32
	}
	ids := make([]entry, len(recs)) // compared in one block, not across records
	for i := range recs {
		ids[i] = entry{recs[i].ID, int32(i)}
	}
	slices.SortFunc(ids, func(a, b entry) int { return strings.Compare(a.id, b.id) })
	out := make([]tenants.Record, len(recs))
	for i, e := range ids {
		out[i] = recs[e.i]
	}
	return out
}

// DecodeStrict decodes one JSON value into v, refusing unknown fields and
// a name given twice in an object, in any case: the admin API's bodies,
// and the registry's plans. A valid JSON value
// that does not fit v is refused with the field at fault named
// (configkey.Error: "routes[0].limits[1].window").
func DecodeStrict(b []byte, v any) error {
	if err := duplicateKey(b); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		if json.Valid(b) {
			if e, ok := locate(b, reflect.TypeOf(v), ""); ok {
				return e
			}
			if _, isObject := object(b); !isObject {
				return errors.New("want a JSON object")
			}
		}
		return err
	}
	if d.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// Page is one page of a listing: the items, and the cursor of the next
// page ("" on the last).
type Page[T any] struct {
	Items []T
	Next  string
}

// page reads the names after cursor from an index zset, at most limit,
// and their values from the hash; names whose value is gone are skipped.
func page[T any](ctx context.Context, c redis.UniversalClient, index, hash, cursor string, limit int) (Page[T], error) {
	start := "-"
	if cursor != "" {
		start = "(" + cursor
	}
	names, err := c.ZRangeArgs(ctx, redis.ZRangeArgs{Key: index, Start: start, Stop: "+", ByLex: true, Count: int64(limit) + 1}).Result()
	if err != nil {
		return Page[T]{}, err
	}
	var out Page[T]
	if len(names) > limit {
		names = names[:limit]
		out.Next = names[limit-1]
	}
	if len(names) == 0 {
		return out, nil
	}
	vals, err := c.HMGet(ctx, hash, names...).Result()
	if err != nil {
		return Page[T]{}, err
	}
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // deleted between the two reads
		}
		var item T
		if json.Unmarshal([]byte(s), &item) != nil {
			continue // left out of the snapshot too, and reported there
		}
		out.Items = append(out.Items, item)
	}
	return out, nil
}

// get reads one JSON value of a hash; ok is false when there is none.
func get[T any](ctx context.Context, c redis.Cmdable, hash, name string) (v T, ok bool, err error) {
	s, err := c.HGet(ctx, hash, name).Result()
	if errors.Is(err, redis.Nil) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return v, false, fmt.Errorf("the stored value of %s %q does not decode: %w", hash, name, err)
	}
	return v, true, nil
}

// Tenants lists the registry's tenants in ID order, from the primary.
func (r *Registry) Tenants(ctx context.Context, cursor string, limit int) (Page[tenants.Record], error) {
	return page[tenants.Record](ctx, r.primary, r.keys.tenantIDs, r.keys.tenants, cursor, limit)
}

// Tenant reads one tenant from the primary.
func (r *Registry) Tenant(ctx context.Context, id string) (tenants.Record, bool, error) {
	return get[tenants.Record](ctx, r.primary, r.keys.tenants, id)
}

// NamedPlan is a plan with its name, as the API lists plans.
type NamedPlan struct {
	Name string `json:"name"`
	tenants.Plan
}

// Plans lists the registry's plans in name order, from the primary.
func (r *Registry) Plans(ctx context.Context, cursor string, limit int) (Page[NamedPlan], error) {
	return page[NamedPlan](ctx, r.primary, r.keys.planNames, r.keys.plans, cursor, limit)
}

// Plan reads one plan from the primary.
func (r *Registry) Plan(ctx context.Context, name string) (NamedPlan, bool, error) {
	return get[NamedPlan](ctx, r.primary, r.keys.plans, name)
}

// LastUsed returns the last use (Unix second, 0: none recorded) of each
// key ID, from the primary.
func (r *Registry) LastUsed(ctx context.Context, keyIDs []string) ([]int64, error) {
	out := make([]int64, len(keyIDs))
	if len(keyIDs) == 0 {
		return out, nil
	}
	vals, err := r.primary.HMGet(ctx, r.keys.lastUsed, keyIDs...).Result()
	if err != nil {
		return nil, err
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i], _ = strconv.ParseInt(s, 10, 64)
		}
	}
	return out, nil
}
