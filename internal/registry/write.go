package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

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

// PutTenant creates or replaces a tenant, keeping the keys issued to it.
// check validates the record against the registry's plans (the caller adds
// the file's); its error is returned as *Invalid.
func (r *Registry) PutTenant(ctx context.Context, rec tenants.Record, check func(tenants.Record, map[string]tenants.Plan) error) (created bool, err error) {
	_, err = r.update(ctx, func(tx *redis.Tx) (func(redis.Pipeliner), error) {
		old, found, err := get[tenants.Record](ctx, tx, r.keys.tenants, rec.ID)
		if err != nil {
			return nil, err
		}
		created = !found
		rec.Issued = old.Issued
		plans, err := r.plansOf(ctx, tx)
		if err != nil {
			return nil, err
		}
		if err := check(rec, plans); err != nil {
			return nil, &Invalid{err}
		}
		return r.putTenant(ctx, rec), nil
	})
	return created, err
}

func (r *Registry) putTenant(ctx context.Context, rec tenants.Record) func(redis.Pipeliner) {
	b, _ := json.Marshal(rec) // plain data: cannot fail
	return func(p redis.Pipeliner) {
		p.HSet(ctx, r.keys.tenants, rec.ID, b)
		p.ZAdd(ctx, r.keys.tenantIDs, redis.Z{Member: rec.ID})
	}
}

// DeleteTenant deletes a tenant and its keys' last-use times.
func (r *Registry) DeleteTenant(ctx context.Context, id string) error {
	_, err := r.update(ctx, func(tx *redis.Tx) (func(redis.Pipeliner), error) {
		old, found, err := get[tenants.Record](ctx, tx, r.keys.tenants, id)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, ErrNotFound
		}
		return func(p redis.Pipeliner) {
			p.HDel(ctx, r.keys.tenants, id)
			p.ZRem(ctx, r.keys.tenantIDs, id)
			for _, k := range old.Issued {
				p.HDel(ctx, r.keys.lastUsed, k.KeyID)
			}
		}, nil
	})
	return err
}

// PutPlan creates or replaces a plan. check's error is returned as
// *Invalid.
func (r *Registry) PutPlan(ctx context.Context, plan NamedPlan, check func(NamedPlan) error) (created bool, err error) {
	_, err = r.update(ctx, func(tx *redis.Tx) (func(redis.Pipeliner), error) {
		n, err := tx.HExists(ctx, r.keys.plans, plan.Name).Result()
		if err != nil {
			return nil, err
		}
		created = !n
		if err := check(plan); err != nil {
			return nil, &Invalid{err}
		}
		b, _ := json.Marshal(plan) // plain data: cannot fail
		return func(p redis.Pipeliner) {
			p.HSet(ctx, r.keys.plans, plan.Name, b)
			p.ZAdd(ctx, r.keys.planNames, redis.Z{Member: plan.Name})
		}, nil
	})
	return created, err
}

// DeletePlan deletes a plan. inUse, if it returns an error, refuses it
// (a tenant still on the plan), as *Invalid.
func (r *Registry) DeletePlan(ctx context.Context, name string, inUse func(string) error) error {
	_, err := r.update(ctx, func(tx *redis.Tx) (func(redis.Pipeliner), error) {
		n, err := tx.HExists(ctx, r.keys.plans, name).Result()
		if err != nil {
			return nil, err
		}
		if !n {
			return nil, ErrNotFound
		}
		if err := inUse(name); err != nil {
			return nil, &Invalid{err}
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
// expiry is brought forward to rot.ExpiresAt (never pushed back).
func (r *Registry) AddKey(ctx context.Context, tenant string, key tenants.IssuedKey, rot *Rotation) error {
	_, err := r.update(ctx, func(tx *redis.Tx) (func(redis.Pipeliner), error) {
		rec, found, err := get[tenants.Record](ctx, tx, r.keys.tenants, tenant)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, ErrNotFound
		}
		if len(rec.Issued) >= MaxKeys {
			return nil, ErrTooManyKeys
		}
		if rot != nil {
			i := slices.IndexFunc(rec.Issued, func(k tenants.IssuedKey) bool { return k.KeyID == rot.KeyID })
			if i < 0 {
				return nil, ErrNoKey
			}
			if old := &rec.Issued[i]; old.ExpiresAt.IsZero() || rot.ExpiresAt.Before(old.ExpiresAt) {
				old.ExpiresAt = rot.ExpiresAt
			}
		}
		rec.Issued = append(rec.Issued, key)
		return r.putTenant(ctx, rec), nil
	})
	return err
}

// RevokeKey removes an issued key from a tenant.
func (r *Registry) RevokeKey(ctx context.Context, tenant, keyID string) error {
	_, err := r.update(ctx, func(tx *redis.Tx) (func(redis.Pipeliner), error) {
		rec, found, err := get[tenants.Record](ctx, tx, r.keys.tenants, tenant)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, ErrNotFound
		}
		i := slices.IndexFunc(rec.Issued, func(k tenants.IssuedKey) bool { return k.KeyID == keyID })
		if i < 0 {
			return nil, ErrNoKey
		}
		rec.Issued = slices.Delete(rec.Issued, i, i+1)
		put := r.putTenant(ctx, rec)
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
