package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/internal/admin"
	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// Loader reads the config anew, from the sources it was read from at start.
type Loader func() (*config.Config, error)

// reloadResults counts reloads by result.
var reloadResults = map[string]*metrics.Counter{}

func init() {
	for _, r := range []string{admin.ReloadOK, admin.ReloadUnchanged, admin.ReloadInvalid, admin.ReloadRestartRequired} {
		reloadResults[r] = metrics.NewCounter(`l1gw_config_reload_total{result="` + r + `"}`)
	}
}

// reloader applies a re-read config to a running gateway: the tenants,
// plans, routes and upstreams, swapped whole, or nothing.
type reloader struct {
	mu   sync.Mutex // one reload at a time
	load Loader     // nil: nothing to re-read
	file string     // the config file to watch; "" for none
	// seen is the hash of the file as last loaded; pending that of a
	// content seen once and not yet loaded (applied only when the next
	// check finds it again, so a file caught half-written is not).
	seen, pending [sha256.Size]byte
	// heldByRegistry: the file's content last read was refused for
	// leaving out registry entries. That is the registry's state as much
	// as the file's, so the next registry change has the file read again.
	heldByRegistry bool
	cfg            atomic.Pointer[config.Config] // the config in force
	reg            *tenants.Registry             // the registry copy in force; nil without one
	last           atomic.Pointer[admin.ReloadResult]
	table          *tenants.Table
	proxy          *upstream.Proxy
	log            *slog.Logger
}

func newReloader(cfg *config.Config, table *tenants.Table, proxy *upstream.Proxy, log *slog.Logger) *reloader {
	r := &reloader{table: table, proxy: proxy, log: log}
	r.cfg.Store(cfg)
	return r
}

// Reloads makes the gateway re-read its config with load on SIGHUP (see
// Reload), on POST /v1/reload and, when file is not "", when the file
// changes (checked every server.config_reload_interval while Run runs).
// loaded is the hash of the file (HashFile) taken before the config in
// force was loaded from it: a change since is then seen. Call it before
// Run.
func (a *App) Reloads(load Loader, file string, loaded [sha256.Size]byte) {
	a.reload.mu.Lock()
	defer a.reload.mu.Unlock()
	a.reload.load, a.reload.file = load, file
	a.reload.seen, a.reload.pending = loaded, loaded
}

// Reload re-reads the config and applies it: tenants, plans, routes and
// upstreams change while requests flow. An invalid config, or one that
// changes a key read only at start, is refused whole and the old config
// keeps serving. trigger names the cause in logs and /readyz.
func (a *App) Reload(trigger string) admin.ReloadResult { return a.reload.run(trigger) }

func (r *reloader) run(trigger string) admin.ReloadResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.apply(trigger)
	reloadResults[res.Result].Inc()
	r.last.Store(&res)
	switch res.Result {
	case admin.ReloadInvalid:
		r.log.Error("config reload refused: the old config serves", "trigger", trigger, "err", res.Error)
	case admin.ReloadRestartRequired:
		r.log.Warn("config reload refused: it changes keys read only at start; restart to apply them. The old config serves",
			"trigger", trigger, "keys", strings.Join(res.RestartKeys, ","))
	}
	return res
}

// apply loads and applies the config; r.mu is held.
func (r *reloader) apply(trigger string) admin.ReloadResult {
	res := admin.ReloadResult{Trigger: trigger, At: time.Now().UTC()}
	r.heldByRegistry = false // set again below if the registry holds this file back
	invalid := func(err error) admin.ReloadResult {
		res.Result, res.Error = admin.ReloadInvalid, err.Error()
		return res
	}
	if r.load == nil {
		return invalid(errors.New("this gateway has no config source to re-read"))
	}
	if r.file != "" {
		// Hashed before it is read: a change after the read is seen by
		// the next check, whatever triggered this reload.
		if sum, err := HashFile(r.file); err == nil {
			r.seen, r.pending = sum, sum
		}
	}
	cfg, err := r.load()
	if err != nil {
		return invalid(err)
	}
	old := r.cfg.Load()
	if keys := config.RestartKeys(old, cfg); len(keys) > 0 {
		res.Result, res.RestartKeys = admin.ReloadRestartRequired, keys
		res.Error = "changed keys take a restart: " + strings.Join(keys, ", ")
		return res
	}
	changed := changedSections(old, cfg)
	if len(changed) == 0 {
		res.Result = admin.ReloadUnchanged
		return res
	}
	snap, err := buildSnapshot(cfg, r.reg)
	if err != nil {
		return invalid(err)
	}
	if lost := dropsRegistry(r.table.Load(), snap, cfg); lost != "" {
		// The registry API refuses a change that would leave a tenant
		// out (409); the file must not do it silently either.
		r.heldByRegistry = true
		return invalid(fmt.Errorf("it would leave out registry entries that serve now: %s. Fix the file or the registry first", lost))
	}
	// The proxy first: a request that resolves its tenant under the old
	// snapshot still finds a dropped upstream by name (Proxy.Pool).
	if err := r.proxy.Reload(cfg.Upstreams, cfg.Routes); err != nil {
		return invalid(err)
	}
	r.swap(snap)
	r.cfg.Store(cfg)
	res.Result = admin.ReloadOK
	r.log.Info("config reloaded", "trigger", trigger, "changed", strings.Join(changed, ","), "tenants", snap.Len())
	return res
}

// dropsRegistry names the registry entries that snap leaves out and prev
// did not, other than those the file now defines itself (the file's wins);
// "" when there are none.
func dropsRegistry(prev, snap *tenants.Snapshot, cfg *config.Config) string {
	type id struct{ object, name string }
	was := map[id]bool{}
	if prev != nil {
		for _, p := range prev.Problems() {
			was[id{p.Object, p.Name}] = true
		}
	}
	var lost []string
	for _, p := range snap.Problems() {
		if was[id{p.Object, p.Name}] || p.Object == "plan" && hasPlan(cfg, p.Name) || p.Object == "tenant" && hasTenant(cfg, p.Name) {
			continue
		}
		if len(lost) == 5 {
			lost = append(lost, "and more")
			break
		}
		lost = append(lost, fmt.Sprintf("%s %q (%s)", p.Object, p.Name, p.Detail))
	}
	return strings.Join(lost, "; ")
}

func hasPlan(cfg *config.Config, name string) bool {
	_, ok := cfg.Plans[name]
	return ok
}

func hasTenant(cfg *config.Config, id string) bool {
	for _, t := range cfg.TenantList {
		if t.ID == id {
			return true
		}
	}
	return false
}

// buildSnapshot builds the tenant snapshot of cfg, with reg merged over
// it when not nil.
func buildSnapshot(cfg *config.Config, reg *tenants.Registry) (*tenants.Snapshot, error) {
	return tenants.BuildWith(cfg.Tenants, cfg.Plans, cfg.TenantList, reg, func(name string) bool {
		_, ok := cfg.Upstreams[name]
		return ok
	})
}

// swap puts snap in force; r.mu is held.
func (r *reloader) swap(snap *tenants.Snapshot) {
	prev := r.table.Load()
	r.table.Swap(snap)
	tenants.Retire(prev, snap)
	r.report(prev, snap)
}

// changedSections names the hot sections that differ between a and b.
func changedSections(a, b *config.Config) []string {
	var out []string
	for _, s := range []struct {
		name string
		a, b any
	}{
		{"tenants", a.Tenants, b.Tenants},
		{"plans", a.Plans, b.Plans},
		{"tenant_list", a.TenantList, b.TenantList},
		{"upstreams", a.Upstreams, b.Upstreams},
		{"routes", a.Routes, b.Routes},
	} {
		if !reflect.DeepEqual(s.a, s.b) {
			out = append(out, s.name)
		}
	}
	return out
}

// watch reloads when the config file's content changes, checking every
// interval until ctx ends. A file that cannot be read is left to the next
// check: an editor or a ConfigMap update may be replacing it.
func (r *reloader) watch(ctx context.Context, interval time.Duration) {
	r.mu.Lock()
	file := r.file
	r.mu.Unlock()
	if file == "" || interval <= 0 {
		return
	}
	every(ctx, interval, func() {
		sum, err := HashFile(file)
		if err != nil {
			return
		}
		r.mu.Lock()
		// New content reloads when two checks in a row find it: a writer
		// that truncates, then writes, may be caught in between, with a
		// prefix that still loads.
		settled := sum != r.seen && sum == r.pending
		r.pending = sum
		r.mu.Unlock()
		if settled {
			r.run("file")
		}
	})
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f()
		}
	}
}

// HashFile is the SHA-256 of a file's content, as the config reload
// compares it.
func HashFile(name string) ([sha256.Size]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
}
