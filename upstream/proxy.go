package upstream

import (
	"bytes"
	"context"
	"log/slog"
	"sort"
	"sync"
)

// Proxy holds every upstream pool and the routing table.
type Proxy struct {
	pools  map[string]*Pool
	routes []route // most specific first
}

type route struct {
	host    []byte
	prefix  []byte
	anyCase bool // the prefix matches in any case
	pool    *Pool
}

// New builds the pools and routes. It does no I/O; call Run for health
// checks. specs and routes must have passed Validate.
func New(specs map[string]Spec, routes []RouteSpec, log *slog.Logger) (*Proxy, error) {
	if err := Validate(specs, routes); err != nil {
		return nil, err
	}
	p := &Proxy{pools: make(map[string]*Pool, len(specs))}
	for name, s := range specs {
		pool, err := newPool(name, s, log)
		if err != nil {
			return nil, err
		}
		p.pools[name] = pool
	}
	for _, r := range routes {
		p.routes = append(p.routes, route{host: []byte(r.Host), prefix: []byte(r.PathPrefix), anyCase: r.CaseInsensitive, pool: p.pools[r.Upstream]})
	}
	// A route with a host beats one without; then the longest prefix wins.
	sort.SliceStable(p.routes, func(i, j int) bool {
		a, b := p.routes[i], p.routes[j]
		if (len(a.host) > 0) != (len(b.host) > 0) {
			return len(a.host) > 0
		}
		return len(a.prefix) > len(b.prefix)
	})
	return p, nil
}

// Route returns the pool for a request's host (port ignored) and path, or
// nil when no route matches.
func (p *Proxy) Route(host, path []byte) *Pool {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[i:], ']') < 0 {
		host = host[:i]
	}
	for i := range p.routes {
		r := &p.routes[i]
		if (len(r.host) == 0 || bytes.EqualFold(r.host, host)) && hasPathPrefix(path, r.prefix, r.anyCase) {
			return r.pool
		}
	}
	return nil
}

// hasPathPrefix says whether path starts with prefix, in any case when
// anyCase.
func hasPathPrefix(path, prefix []byte, anyCase bool) bool {
	if !anyCase {
		return bytes.HasPrefix(path, prefix)
	}
	return len(path) >= len(prefix) && bytes.EqualFold(path[:len(prefix)], prefix)
}

// Pool returns the named pool.
func (p *Proxy) Pool(name string) (*Pool, bool) {
	pool, ok := p.pools[name]
	return pool, ok
}

// Run runs the pools' health checks until ctx ends.
func (p *Proxy) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, pool := range p.pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool.Run(ctx)
		}()
	}
	wg.Wait()
}
