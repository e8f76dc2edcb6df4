package upstream

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Proxy holds every upstream pool and the routing table. Reload replaces
// both while requests flow: a request uses the table it looked up.
type Proxy struct {
	cur atomic.Pointer[table]
	log *slog.Logger

	mu     sync.Mutex                   // Reload and Run
	ctx    context.Context              // Run's; nil before Run
	checks map[*Pool]context.CancelFunc // the pools whose health checks run
	wg     sync.WaitGroup               // those health checks
}

// table is one generation of pools and routes.
type table struct {
	pools  map[string]*Pool
	routes []*Route // most specific first
	// retired are the previous table's pools this one dropped: a request
	// that resolved its tenant under the old config still finds its pool
	// by name until the next reload.
	retired map[string]*Pool
	// gen counts the tables before this one: Generation.
	gen uint64
}

// New builds the pools and routes. It does no I/O; call Run for health
// checks.
func New(specs map[string]Spec, routes []RouteSpec, log *slog.Logger) (*Proxy, error) {
	t, err := newTable(specs, routes, nil, log)
	if err != nil {
		return nil, err
	}
	p := &Proxy{log: log, checks: map[*Pool]context.CancelFunc{}}
	p.cur.Store(t)
	t.publish(nil)
	return p, nil
}

// newTable builds a table, taking from prev (may be nil) every pool whose
// spec is unchanged, so that it keeps its connections, health and
// ejections.
func newTable(specs map[string]Spec, routes []RouteSpec, prev *table, log *slog.Logger) (*table, error) {
	if err := Validate(specs, routes); err != nil {
		return nil, err
	}
	t := &table{pools: make(map[string]*Pool, len(specs))}
	for name, s := range specs {
		var old *Pool
		if prev != nil {
			old = prev.pools[name]
		}
		if old != nil && reflect.DeepEqual(old.spec, s) {
			t.pools[name] = old
			continue
		}
		pool, err := newPool(name, s, log)
		if err != nil {
			return nil, err
		}
		if old != nil {
			pool.inherit(old)
		}
		t.pools[name] = pool
	}
	for _, r := range routes {
		t.routes = append(t.routes, &Route{Name: r.Name, Pool: t.pools[r.Upstream], host: []byte(strings.TrimSuffix(r.Host, ".")), prefix: []byte(r.PathPrefix),
			anyCase: r.CaseInsensitive, shared: scoped(RouteScope(r.Name), r.Limits, r.Concurrency, r.LeaseTTL)})
	}
	// A route with a host beats one without; then the longest prefix wins.
	sort.SliceStable(t.routes, func(i, j int) bool {
		a, b := t.routes[i], t.routes[j]
		if (len(a.host) > 0) != (len(b.host) > 0) {
			return len(a.host) > 0
		}
		return len(a.prefix) > len(b.prefix)
	})
	if prev != nil {
		t.gen = prev.gen + 1
		for name, old := range prev.pools {
			if t.pools[name] != old {
				if t.retired == nil {
					t.retired = map[string]*Pool{}
				}
				t.retired[name] = old
			}
		}
	}
	return t, nil
}

// live maps an upstream name to its current pool, for the gauges
// registered once per name (metrics cannot be registered twice).
var live sync.Map

// publish makes t's pools the ones the per-upstream gauges read.
func (t *table) publish(old *table) {
	for name, pool := range t.pools {
		live.Store(name, pool)
	}
	if old != nil {
		for name := range old.pools {
			if _, ok := t.pools[name]; !ok {
				live.Delete(name)
			}
		}
	}
}

// Reload replaces the pools and routes. Invalid specs change nothing. A
// pool whose spec is unchanged is kept as it is; a new or changed one
// starts its health checks (when Run is running); a dropped or replaced
// one stops them and closes its idle connections, while requests already
// on it finish.
func (p *Proxy) Reload(specs map[string]Spec, routes []RouteSpec) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.cur.Load()
	t, err := newTable(specs, routes, old, p.log)
	if err != nil {
		return err
	}
	p.cur.Store(t)
	t.publish(old)
	if p.ctx != nil {
		for _, pool := range t.pools {
			p.startChecks(pool)
		}
	}
	for _, pool := range t.retired {
		if cancel, ok := p.checks[pool]; ok {
			cancel()
			delete(p.checks, pool)
		}
		pool.closeIdle()
	}
	return nil
}

// Route returns the pool for a request's host (port ignored) and path, or
// nil when no route matches.
func (p *Proxy) Route(host, path []byte) *Pool {
	if r := p.Match(host, path); r != nil {
		return r.Pool
	}
	return nil
}

// Match returns the route of a request's host (port ignored) and path, or
// nil when none matches.
func (p *Proxy) Match(host, path []byte) *Route {
	// "api.example.com." is the same name, fully qualified (RFC 1034
	// §3.1): a route for the one is the other's too.
	host = bytes.TrimSuffix(Hostname(host), []byte("."))
	for _, r := range p.cur.Load().routes {
		if (len(r.host) == 0 || bytes.EqualFold(r.host, host)) && hasPathPrefix(path, r.prefix, r.anyCase) {
			return r
		}
	}
	return nil
}

// Hostname is host (a Host value, or a URI's host) without its port; an
// IPv6 literal keeps its brackets.
func Hostname(host []byte) []byte {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[i:], ']') < 0 {
		return host[:i]
	}
	return host
}

// hasPathPrefix says whether path starts with prefix, in any case when
// anyCase.
func hasPathPrefix(path, prefix []byte, anyCase bool) bool {
	if !anyCase {
		return bytes.HasPrefix(path, prefix)
	}
	return len(path) >= len(prefix) && bytes.EqualFold(path[:len(prefix)], prefix)
}

// Pool returns the named pool: the current one, or, for a name the last
// reload dropped, the pool it had.
func (p *Proxy) Pool(name string) (*Pool, bool) {
	t := p.cur.Load()
	if pool, ok := t.pools[name]; ok {
		return pool, true
	}
	pool, ok := t.retired[name]
	return pool, ok
}

// Generation changes with every reload that took: whoever acts on
// what Match and Pool said (an open tunnel) looks again when it does.
func (p *Proxy) Generation() uint64 { return p.cur.Load().gen }

// Run runs the pools' health checks until ctx ends, those of pools a
// reload adds too.
func (p *Proxy) Run(ctx context.Context) {
	p.mu.Lock()
	p.ctx = ctx
	for _, pool := range p.cur.Load().pools {
		p.startChecks(pool)
	}
	p.mu.Unlock()
	<-ctx.Done()
	// A reload from now on starts no health check (and no wg.Add runs
	// beside the Wait).
	p.mu.Lock()
	p.ctx = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// startChecks starts pool's health checks unless they run; p.mu is held.
func (p *Proxy) startChecks(pool *Pool) {
	if _, ok := p.checks[pool]; ok {
		return
	}
	ctx, cancel := context.WithCancel(p.ctx)
	p.checks[pool] = cancel
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		pool.Run(ctx)
	}()
}
