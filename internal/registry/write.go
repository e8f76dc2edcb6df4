package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/configkey"
	"github.com/l1gw/l1gw/tenants"
)

// Errors of the writes.
var (
	// ErrNotFound: no such tenant or plan in the registry.
	ErrNotFound = errors.New("registry: not found")
	// ErrNoKey: the tenant has no issued key of that ID.
	ErrNoKey = errors.New("registry: the tenant has no key of that id")
	// ErrTooManyKeys: the tenant has MaxKeys issued keys already.
	ErrTooManyKeys = fmt.Errorf("registry: a tenant has at most %d issued keys; revoke one first", MaxKeys)
	// ErrFull: the registry holds its most tenants (tenants.max).
	ErrFull = errors.New("registry: tenants.max tenants are served already")
	// ErrBusy: the write lost to concurrent writes too many times.
	ErrBusy = errors.New("registry: other writes kept changing the registry; try again")
)

// MaxKeys is the most issued keys a tenant holds, expired ones included
// until revoked: it bounds a record, read on every snapshot load.
const MaxKeys = 100

// Invalid wraps the validation error of a write: the entry, checked
// against the registry as it is, does not build.
type Invalid struct{ Err error }

func (e *Invalid) Error() string { return e.Err.Error() }
func (e *Invalid) Unwrap() error { return e.Err }

// maxAttempts bounds how often a write starts over after losing to
// concurrent writes.
const maxAttempts = 50

// update runs one write as a transaction: read reads what the write
// depends on (inside WATCH of the version counter) and returns the
// commands, which run in one MULTI with the version's increment and its
// notification. A concurrent write makes it start over. It returns the new
// version.
func (r *Registry) update(ctx context.Context, read func(tx *redis.Tx) (func(p redis.Pipeliner), error)) (int64, error) {
	for attempt := range maxAttempts {
		if attempt > 0 {
			// Writers that lost back off apart, so that one of them wins
			// the next round.
			time.Sleep(time.Duration(rand.Int64N(int64(attempt) * int64(2*time.Millisecond))))
		}
		var next int64
		err := r.primary.Watch(ctx, func(tx *redis.Tx) error {
			v, err := version(ctx, tx, r.keys.version)
			if err != nil {
				return err
			}
			write, err := read(tx)
			if err != nil {
				return err
			}
			next = v + 1
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				write(p)
				p.Set(ctx, r.keys.version, next, 0)
				p.Publish(ctx, r.keys.changed, next)
				return nil
			})
			return err
		}, r.keys.version)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return next, err
	}
	return 0, ErrBusy
}

// plansOf reads every registry plan, for a tenant's check.
func (r *Registry) plansOf(ctx context.Context, c redis.Cmdable) (map[string]tenants.Plan, error) {
	all, err := c.HGetAll(ctx, r.keys.plans).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]tenants.Plan, len(all))
	for name, s := range all {
		var p NamedPlan
		if json.Unmarshal([]byte(s), &p) == nil {
			out[name] = p.Plan
		}
	}
	return out, nil
}

// Check validates a tenant record against plans (the registry's, to
// which the caller adds the file's); its error is returned as *Invalid.
type Check func(rec tenants.Record, plans map[string]tenants.Plan) error

// PutTenant creates or replaces a tenant, keeping the keys issued to it.
// A new tenant is refused with ErrFull when the registry holds limit
// already (limit < 0: no cap). A key another registry tenant holds is refused as
// *Invalid naming the field.
func (r *Registry) PutTenant(ctx context.Context, rec tenants.Record, check Check, limit int64) (created bool, err error) {
	_, err = r.update(ctx, func(tx *redis.Tx) (func(redis.Pipeliner), error) {
		old, found, err := get[tenants.Record](ctx, tx, r.keys.tenants, rec.ID)
		if err != nil {
			return nil, err
		}
		created = !found
		rec.Issued = old.Issued
		if err := r.checkTenant(ctx, tx, rec, check); err != nil {
			return nil, err
		}
		if created && limit >= 0 {
			n, err := tx.ZCard(ctx, r.keys.tenantIDs).Result()
			if err != nil {
				return nil, err
			}
			if n >= limit {
				return nil, ErrFull
			}
		}
		return r.putTenant(ctx, old, found, rec), nil
	})
	return created, err
}

// checkTenant runs check against the registry's plans, and refuses a key
// that another tenant of the registry holds.
func (r *Registry) checkTenant(ctx context.Context, tx *redis.Tx, rec tenants.Record, check Check) error {
	plans, err := r.plansOf(ctx, tx)
	if err != nil {
		return err
	}
	if err := check(rec, plans); err != nil {
		return &Invalid{err}
	}
	keys := keysOf(rec)
	if len(keys) == 0 {
		return nil
	}
	hashes := make([]string, len(keys))
	for i, k := range keys {
		hashes[i] = k.hash
	}
	owners, err := tx.HMGet(ctx, r.keys.keyOwner, hashes...).Result()
	if err != nil {
		return err
	}
	for i, o := range owners {
		if owner, ok := o.(string); ok && owner != rec.ID {
			return &Invalid{configkey.Errorf(keys[i].field, "this key belongs to another tenant")}
		}
	}
	return nil
}

// tenantKey is one key digest of a record and the field that holds it.
type tenantKey struct{ hash, field string }

// keysOf lists every key digest a record holds, as stored (plain keys are
// never stored).
func keysOf(rec tenants.Record) []tenantKey {
	var out []tenantKey
	for i, h := range rec.KeyHashes {
		out = append(out, tenantKey{h, "key_hashes[" + strconv.Itoa(i) + "]"})
	}
	for i, k := range rec.RetiringKeys {
		if k.KeyHash != "" {
			out = append(out, tenantKey{k.KeyHash, "retiring_keys[" + strconv.Itoa(i) + "].key_hash"})
		}
	}
	for i, k := range rec.Issued {
		out = append(out, tenantKey{k.KeyHash, "issued_keys[" + strconv.Itoa(i) + "].key_hash"})
	}
	return out
}

// putTenant writes rec over old (found: there was one), with the indexes:
// the plan's tenants, and each key's owner.
func (r *Registry) putTenant(ctx context.Context, old tenants.Record, found bool, rec tenants.Record) func(redis.Pipeliner) {
	b, _ := json.Marshal(rec) // plain data: cannot fail
	keep := map[string]bool{}
	for _, k := range keysOf(rec) {
		keep[k.hash] = true
	}
	return func(p redis.Pipeliner) {
		if found {
			r.dropIndexes(ctx, p, old, keep)
		}
		p.HSet(ctx, r.keys.tenants, rec.ID, b)
		p.ZAdd(ctx, r.keys.tenantIDs, redis.Z{Member: rec.ID})
		p.SAdd(ctx, r.keys.planTenants(rec.Plan), rec.ID)
		for h := range keep {
			p.HSet(ctx, r.keys.keyOwner, h, rec.ID)
		}
	}
}

// dropIndexes removes old from the indexes, but for the keys in keep.
func (r *Registry) dropIndexes(ctx context.Context, p redis.Pipeliner, old tenants.Record, keep map[string]bool) {
	p.SRem(ctx, r.keys.planTenants(old.Plan), old.ID)
	for _, k := range keysOf(old) {
		if !keep[k.hash] {
			p.HDel(ctx, r.keys.keyOwner, k.hash)
		}
	}
}

// existing reads a tenant that must exist (ErrNotFound).
func (r *Registry) existing(ctx context.Context, tx *redis.Tx, id string) (tenants.Record, error) {
	rec, found, err := get[tenants.Record](ctx, tx, r.keys.tenants, id)
	if err == nil && !found {
		err = ErrNotFound
	}
	return rec, err
}

// DeleteTenant deletes a tenant, its keys and their last-use times.
func (r *Registry) DeleteTenant(ctx context.Context, id string) error {
	_, err := r.update(ctx, func(tx *redis.Tx) (func(redis.Pipeliner), error) {
		old, err := r.existing(ctx, tx, id)
		if err != nil {
			return nil, err
		}
		return func(p redis.Pipeliner) {
			r.dropIndexes(ctx, p, old, nil)
			p.HDel(ctx, r.keys.tenants, id)
			p.ZRem(ctx, r.keys.tenantIDs, id)
			for _, k := range old.Issued {
				p.HDel(ctx, r.keys.lastUsed, k.KeyID)
			}
		}, nil
	})
	return err
}

// Breaks refuses a plan change that would leave tenants on the plan
// invalid.
type Breaks struct {
	// IDs are (up to 10 of) the tenants it would break.
	IDs []string
	Err error
}

func (e *Breaks) Error() string {
	return fmt.Sprintf("the change would leave tenants on the plan invalid (%s): %v", strings.Join(e.IDs, ", "), e.Err)
}

// PutPlan creates or replaces a plan. checkPlan's error is returned as
// *Invalid; a change that check finds breaks a tenant on the plan, as
// *Breaks.
func (r *Registry) PutPlan(ctx context.Context, plan NamedPlan, checkPlan func(NamedPlan) error, check Check) (created bool, err error) {
	_, err = r.update(ctx, func(tx *redis.Tx) (func(redis.Pipeliner), error) {
		n, err := tx.HExists(ctx, r.keys.plans, plan.Name).Result()
		if err != nil {
			return nil, err
		}
		created = !n
		if err := checkPlan(plan); err != nil {
			return nil, &Invalid{err}
		}
		if err := r.checkPlanTenants(ctx, tx, plan, check); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(plan) // plain data: cannot fail
		return func(p redis.Pipeliner) {
			p.HSet(ctx, r.keys.plans, plan.Name, b)
			p.ZAdd(ctx, r.keys.planNames, redis.Z{Member: plan.Name})
		}, nil
	})
	return created, err
}

// checkPlanTenants checks every tenant on plan against its new limits.
func (r *Registry) checkPlanTenants(ctx context.Context, tx *redis.Tx, plan NamedPlan, check Check) error {
	ids, err := tx.SMembers(ctx, r.keys.planTenants(plan.Name)).Result()
	if err != nil || len(ids) == 0 {
		return err
	}
	plans, err := r.plansOf(ctx, tx)
	if err != nil {
		return err
	}
	plans[plan.Name] = plan.Plan
	vals, err := tx.HMGet(ctx, r.keys.tenants, ids...).Result()
	if err != nil {
		return err
	}
	var breaks Breaks
	for i, v := range vals {
		var rec tenants.Record
		if s, ok := v.(string); !ok || json.Unmarshal([]byte(s), &rec) != nil {
			continue // gone, or left out already
		}
		if err := check(rec, plans); err != nil {
			if breaks.Err == nil {
				breaks.Err = err
			}
			if len(breaks.IDs) < 10 {
				breaks.IDs = append(breaks.IDs, ids[i])
			}
		}
	}
	if breaks.Err != nil {
		slices.Sort(breaks.IDs)
		return &breaks
	}
	return nil
}

// DeletePlan deletes a plan no registry tenant is on; one that is, is
// refused as *Breaks.
func (r *Registry) DeletePlan(ctx context.Context, name string) error {
	_, err := r.update(ctx, func(tx *redis.Tx) (func(redis.Pipeliner), error) {
		n, err := tx.HExists(ctx, r.keys.plans, name).Result()
		if err != nil {
			return nil, err
		}
		if !n {
			return nil, ErrNotFound
		}
		ids, err := tx.SRandMemberN(ctx, r.keys.planTenants(name), 10).Result()
		if err != nil {
			return nil, err
		}
		if len(ids) > 0 {
			slices.Sort(ids)
			return nil, &Breaks{IDs: ids, Err: errors.New("tenants are on this plan; move them first")}
		}
		return func(p redis.Pipeliner) {
			p.HDel(ctx, r.keys.plans, name)
			p.ZRem(ctx, r.keys.planNames, name)
		}, nil
	})
	return err
}

// Rotation retires a key as another is issued: the old key works until
// ExpiresAt.
type Rotation struct {
	KeyID     string
	ExpiresAt time.Time
}

// AddKey adds an issued key to a tenant; with rot, the rotated key's
// expiry is brought forward to rot.ExpiresAt (never pushed back). The
// record is checked as PutTenant checks it.
func (r *Registry) AddKey(ctx context.Context, tenant string, key tenants.IssuedKey, rot *Rotation, check Check) error {
	_, err := r.update(ctx, func(tx *redis.Tx) (func(redis.Pipeliner), error) {
		old, err := r.existing(ctx, tx, tenant)
		if err != nil {
			return nil, err
		}
		if len(old.Issued) >= MaxKeys {
			return nil, ErrTooManyKeys
		}
		rec := old
		rec.Issued = slices.Clone(old.Issued)
		if rot != nil {
			i := slices.IndexFunc(rec.Issued, func(k tenants.IssuedKey) bool { return k.KeyID == rot.KeyID })
			if i < 0 {
				return nil, ErrNoKey
			}
			if k := &rec.Issued[i]; k.ExpiresAt.IsZero() || rot.ExpiresAt.Before(k.ExpiresAt) {
				k.ExpiresAt = rot.ExpiresAt
			}
		}
		rec.Issued = append(rec.Issued, key)
		if err := r.checkTenant(ctx, tx, rec, check); err != nil {
			return nil, err
		}
		return r.putTenant(ctx, old, true, rec), nil
	})
	return err
}

// RevokeKey removes an issued key from a tenant.
func (r *Registry) RevokeKey(ctx context.Context, tenant, keyID string) error {
	_, err := r.update(ctx, func(tx *redis.Tx) (func(redis.Pipeliner), error) {
		old, err := r.existing(ctx, tx, tenant)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(old.Issued, func(k tenants.IssuedKey) bool { return k.KeyID == keyID })
		if i < 0 {
			return nil, ErrNoKey
		}
		rec := old
		rec.Issued = slices.Delete(slices.Clone(old.Issued), i, i+1)
		put := r.putTenant(ctx, old, true, rec)
		return func(p redis.Pipeliner) {
			put(p)
			p.HDel(ctx, r.keys.lastUsed, keyID)
		}, nil
	})
	return err
}

// flushScript keeps, for each key ID, the latest of the stored and the
// given last use: gateways flush in any order.
var flushScript = redis.NewScript(`
for i = 1, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > cur then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 0
`)

// FlushLastUsed writes keys' last uses (key ID → Unix second) to the
// primary, keeping the latest of each.
func (r *Registry) FlushLastUsed(ctx context.Context, used map[string]int64) error {
	if len(used) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(used))
	for id, sec := range used {
		args = append(args, id, sec)
	}
	return flushScript.Run(ctx, r.primary, []string{r.keys.lastUsed}, args...).Err()
}
