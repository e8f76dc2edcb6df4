package admin

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/gateway"
	"github.com/l1gw/l1gw/internal/registry"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// SimulateRequest is the body of POST /v1/simulate: the request to decide,
// named by its API key or by its tenant's id.
type SimulateRequest struct {
	Key    string `json:"key,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	// ClientIP is the anonymous caller's address (when the key is unknown
	// and unknown callers are anonymous).
	ClientIP string `json:"client_ip,omitempty"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	// Host is the request's host, for the routes that match by host
	// (their shared limits); "" matches the routes without one.
	Host string `json:"host,omitempty"`
}

// Simulation is the answer of POST /v1/simulate.
type Simulation struct {
	Tenant string `json:"tenant"`
	// Result is "allowed" or "denied": what the request would get now.
	// Shadow rules take no part: they never deny.
	Result string `json:"result"`
	// Rules are the rules the request is decided by, with each one's use.
	Rules []SimulatedRule `json:"rules"`
}

// SimulatedRule is one rule of a simulation.
type SimulatedRule struct {
	RuleUsage
	// Cost is what the request would use of it; Fits whether it fits (for
	// a shadow rule: whether it would have).
	Cost int64 `json:"cost"`
	Fits bool  `json:"fits"`
}

// simulate is POST /v1/simulate: decide a request against the rules in
// force and the use recorded, and record nothing. The use is read as
// /v1/tenants/{id}/usage reads it (the replica in Redis modes).
func (a *Admin) simulate(ctx *fasthttp.RequestCtx) {
	var in SimulateRequest
	if err := registry.DecodeStrict(ctx.PostBody(), &in); err != nil {
		writeProblem(ctx, badRequest("the body is not a JSON simulation request: "+err.Error()))
		return
	}
	if in.Method == "" || in.Path == "" || in.Path[0] != '/' {
		writeProblem(ctx, badRequest("method and path (starting with /) are required"))
		return
	}
	if strings.ContainsAny(in.Path, "# \t") {
		writeProblem(ctx, badRequest("path: as a request line carries it, with no '#' (a fragment is never sent) and no white space"))
		return
	}
	if !gateway.ForwardsMethod([]byte(in.Method)) {
		writeProblem(ctx, badRequest("method: GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS; the gateway refuses any other (405 for CONNECT and TRACE, else 501)"))
		return
	}
	if gateway.AmbiguousPath([]byte(strings.SplitN(in.Path, "?", 2)[0])) {
		writeProblem(ctx, badRequest("path: the gateway refuses it as ambiguous (400): an encoded '/', '\\', '.', ';' or '%', a '\\' or ';', an empty, '.' or '..' segment, or a control byte"))
		return
	}
	snap := a.tenants.Load()
	var t *tenants.Tenant
	switch {
	case in.Key != "" && in.Tenant != "":
		writeProblem(ctx, badRequest("name the request by key or by tenant, not both"))
		return
	case in.Tenant != "":
		var ok bool
		if t, ok = snap.ByID(in.Tenant); !ok {
			writeProblem(ctx, problemNoTenant)
			return
		}
	default:
		var res tenants.Resolution
		if t, res = snap.Peek([]byte(in.Key)); t == nil {
			if res == tenants.MissingKey {
				writeProblem(ctx, badRequest("key or tenant is required"))
				return
			}
			writeProblem(ctx, problem{"about:blank", "Not Found", fasthttp.StatusNotFound, "no tenant has this key"})
			return
		}
	}
	counted := t.ID
	if t.Anonymous() {
		ip, err := netip.ParseAddr(in.ClientIP)
		if err != nil {
			writeProblem(ctx, badRequest("an anonymous caller is counted by its address: client_ip is required"))
			return
		}
		counted = t.AnonymousKey(ip)
	}
	// The path as the gateway matches it: percent-decoded, normalised.
	var uri fasthttp.URI
	if err := uri.Parse(nil, []byte(in.Path)); err != nil {
		writeProblem(ctx, badRequest("path: "+err.Error()))
		return
	}
	rules := t.Rules([]byte(in.Method), uri.Path())
	if a.proxy != nil {
		rules = a.withShared(rules, t, []byte(in.Host), uri.Path(), snap)
	}
	c, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	us, err := a.limits.Usage(c, counted, rules)
	if err != nil {
		writeProblem(ctx, problemStoreDown)
		return
	}
	out := Simulation{Tenant: t.ID, Result: "allowed", Rules: make([]SimulatedRule, len(us))}
	for i, u := range us {
		cost := max(u.Rule.Cost, 1)
		fits := cost <= u.Rule.Limit-u.Used // not Used+cost: no overflow near a limit of 2^63
		if !fits && !u.Rule.Shadow() {
			out.Result = "denied"
		}
		u.Reset = u.Reset.Round(time.Millisecond)
		out.Rules[i] = SimulatedRule{RuleUsage: ruleUsage(u), Cost: cost, Fits: fits}
	}
	writeJSON(ctx, out)
}

func badRequest(detail string) problem {
	return problem{"about:blank", "Bad Request", fasthttp.StatusBadRequest, detail}
}

// withShared is rules, a tenant's, with the shared limits of the route
// host and path match and of the upstream it goes to (the tenant's own,
// if it has one), as the gateway decides them.
func (a *Admin) withShared(rules []limiter.Rule, t *tenants.Tenant, host, path []byte, snap *tenants.Snapshot) []limiter.Rule {
	rt := a.proxy.Match(host, path)
	if rt == nil {
		return rules
	}
	pool := rt.Pool
	if t.Upstream != "" {
		if p, ok := a.proxy.Pool(t.Upstream); ok {
			pool = p
		}
	}
	return rt.Rules(rules, pool, snap)
}
