package app

import (
	"context"
	"crypto/sha256"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/internal/admin"
	"github.com/l1gw/l1gw/internal/registry"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// The registry entries the snapshot in force leaves out, by kind.
var (
	registryConflicts = metrics.NewGauge(`l1gw_tenants_registry_problems{kind="conflict"}`, nil)
	registryInvalid   = metrics.NewGauge(`l1gw_tenants_registry_problems{kind="invalid"}`, nil)
)

// lastUseFlush is how often keys' last uses are written to Redis.
const lastUseFlush = 10 * time.Second

// newRegistry builds the registry and its syncer when tenants.source is
// redis or both; nils otherwise.
func newRegistry(cfg *config.Config, clients *limiter.Clients, rl *reloader) (*registry.Registry, *registry.Syncer) {
	if cfg.Tenants.Source == tenants.SourceConfig || clients == nil {
		return nil, nil
	}
	reg := registry.New(clients.Primary, clients.Replica, cfg.RateLimit.KeyPrefix)
	use := tenants.NewKeyUse()
	sync := registry.NewSyncer(reg, registry.SyncOptions{Refresh: cfg.Tenants.Refresh, FlushInterval: lastUseFlush,
		Apply: func(r *tenants.Registry) {
			rl.applyRegistry(r)
			use.Forget(keyIDs(r))
		}, Use: use, Log: rl.log})
	return reg, sync
}

// keyIDs reports whether a key ID is issued in r.
func keyIDs(r *tenants.Registry) func(string) bool {
	ids := map[string]bool{}
	for _, t := range r.Tenants {
		for _, k := range t.Issued {
			ids[k.KeyID] = true
		}
	}
	return func(id string) bool { return ids[id] }
}

// applyRegistry puts a new copy of the registry in force over the config
// file in force.
func (r *reloader) applyRegistry(reg *tenants.Registry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	snap, err := buildSnapshot(r.cfg.Load(), reg)
	if err != nil {
		// The file's part built when it was loaded, and the registry's
		// entries are left out one by one: not expected.
		r.log.Error("tenant registry: the snapshot does not build; the old one serves", "err", err.Error(), "version", reg.Version)
		return
	}
	r.reg = reg
	r.swap(snap)
	r.log.Info("tenant registry: applied", "version", reg.Version, "tenants", snap.Len())
	if r.heldByRegistry {
		// The file refused for this registry's sake is read again at the
		// watch's next check (its content is still the one pending).
		r.heldByRegistry, r.seen = false, [sha256.Size]byte{}
	}
}

// report logs the registry entries snap leaves out that prev did not, and
// sets the problem gauges.
func (r *reloader) report(prev, snap *tenants.Snapshot) {
	type id struct{ kind, object, name string }
	seen := map[id]bool{}
	if prev != nil {
		for _, p := range prev.Problems() {
			seen[id{p.Kind, p.Object, p.Name}] = true
		}
	}
	var conflicts, invalid int
	for _, p := range snap.Problems() {
		if p.Kind == tenants.ProblemConflict {
			conflicts++
		} else {
			invalid++
		}
		if !seen[id{p.Kind, p.Object, p.Name}] {
			r.log.Warn("tenant registry: an entry is left out", "kind", p.Kind, "object", p.Object, "name", p.Name, "detail", p.Detail)
		}
	}
	registryConflicts.Set(float64(conflicts))
	registryInvalid.Set(float64(invalid))
}

// syncRegistry reads the registry once before serving; without it, the
// registry's tenants arrive when Redis answers.
func (a *App) syncRegistry() {
	if a.sync == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.sync.Sync(ctx); err != nil {
		a.log.Warn("tenant registry: not read at start; serving the config file's tenants until it is", "err", err.Error())
	}
}

// fileView is the config file in force, as the admin API checks registry
// writes against it.
func (r *reloader) fileView() admin.FileView {
	cfg := r.cfg.Load()
	ids := make(map[string]bool, len(cfg.TenantList))
	for _, t := range cfg.TenantList {
		ids[t.ID] = true
	}
	return admin.FileView{Source: cfg.Tenants.Source, Plans: cfg.Plans, Tenants: len(cfg.TenantList),
		HasTenant: func(id string) bool { return ids[id] },
		HasUpstream: func(name string) bool {
			_, ok := cfg.Upstreams[name]
			return ok
		}}
}

// maxShownProblems bounds the problems /readyz names.
const maxShownProblems = 20

// registryStatus reports the registry copy's state for /readyz; nil
// without a registry.
func registryStatus(sync *registry.Syncer, table *tenants.Table) func() *admin.RegistryStatus {
	if sync == nil {
		return nil
	}
	return func() *admin.RegistryStatus {
		st := &admin.RegistryStatus{Version: sync.Version(), AgeSeconds: -1}
		if age := sync.Age(); age >= 0 {
			st.AgeSeconds = age.Seconds()
		}
		for _, p := range table.Load().Problems() {
			if p.Kind == tenants.ProblemConflict {
				st.Conflicts++
			} else {
				st.Invalid++
			}
			if len(st.Problems) < maxShownProblems {
				st.Problems = append(st.Problems, admin.ProblemEntry{Kind: p.Kind, Object: p.Object, Name: p.Name})
			}
		}
		return st
	}
}
