package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/configkey"
	"github.com/l1gw/l1gw/internal/registry"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// FileView is what registry writes are checked against: the config file
// in force.
type FileView struct {
	// Source is tenants.source.
	Source string
	// Plans are the file's plans.
	Plans map[string]tenants.Plan
	// HasTenant reports whether the file defines a tenant.
	HasTenant func(id string) bool
	// HasUpstream reports whether an upstream exists.
	HasUpstream func(name string) bool
	// Tenants is how many tenants the file defines.
	Tenants int
}

// check is how a registry write checks a tenant record: against the
// registry's plans and the file's (which win), and the file's upstreams.
func (f FileView) check(rec tenants.Record, plans map[string]tenants.Plan) error {
	return f.checkBy(tenants.CheckRecord, rec, plans)
}

// checkStored is check for a record already stored (a plan change
// re-checks its tenants): as the snapshot builds it.
func (f FileView) checkStored(rec tenants.Record, plans map[string]tenants.Plan) error {
	return f.checkBy(tenants.CheckStoredRecord, rec, plans)
}

func (f FileView) checkBy(check func(tenants.Record, map[string]tenants.Plan, func(string) bool) error, rec tenants.Record, plans map[string]tenants.Plan) error {
	all := maps.Clone(plans)
	maps.Copy(all, f.Plans)
	return check(rec, all, f.HasUpstream)
}

// TenantBody is a registry tenant as the API reads and writes it: the
// config file's tenant_list fields, without plain keys (issue those with
// POST /v1/tenants/{id}/keys).
type TenantBody struct {
	ID           string                `json:"id"`
	Plan         string                `json:"plan"`
	KeyHashes    []string              `json:"key_hashes,omitempty"`
	RetiringKeys []tenants.RetiringKey `json:"retiring_keys,omitempty"`
	Upstream     string                `json:"upstream,omitempty"`
	Limits       []limiter.Rule        `json:"limits,omitempty"`
	Routes       []tenants.RouteSpec   `json:"routes,omitempty"`
}

func tenantBody(r tenants.Record) TenantBody {
	return TenantBody{ID: r.ID, Plan: r.Plan, KeyHashes: r.KeyHashes, RetiringKeys: r.RetiringKeys, Upstream: r.Upstream,
		Limits: r.Limits, Routes: r.Routes}
}

// PlanBody is a registry plan as the API reads and writes it.
type PlanBody = registry.NamedPlan

// Page sizes of the listings.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// fieldError is one invalid field of a request body.
type fieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// invalid answers 400 naming every field at fault in err (as
// *configkey.Error values), or err's text when it names none.
func invalid(ctx *fasthttp.RequestCtx, err error) {
	var fields []fieldError
	var walk func(error)
	walk = func(e error) {
		var ke *configkey.Error
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		} else if errors.As(e, &ke) {
			fields = append(fields, fieldError{ke.Path, ke.Msg})
		}
	}
	walk(err)
	p := problemBody{problem: badRequest(err.Error()), Errors: fields}
	writeProblemBody(ctx, p)
}

// problemBody is a problem with the fields at fault.
type problemBody struct {
	problem
	Errors []fieldError `json:"errors,omitempty"`
}

func fieldProblem(ctx *fasthttp.RequestCtx, field, format string, args ...any) {
	invalid(ctx, configkey.Errorf(field, format, args...))
}

// registryOn answers 409 and returns false when there is no registry.
func (a *Admin) registryOn(ctx *fasthttp.RequestCtx) bool {
	if a.registry != nil {
		return true
	}
	writeProblem(ctx, problem{"about:blank", "Conflict", fasthttp.StatusConflict,
		"tenants.source is config: tenants and plans come from the config file (reload it to change them); set tenants.source to redis or both for this API"})
	return false
}

// storeError answers a registry error that is not the caller's.
func storeError(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, registry.ErrBusy) {
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	}
	writeProblem(ctx, problem{"about:blank", "Service Unavailable", fasthttp.StatusServiceUnavailable, "the tenant registry did not answer: " + err.Error()})
}

// pageArgs reads ?cursor=&limit=.
func pageArgs(ctx *fasthttp.RequestCtx) (cursor string, limit int, ok bool) {
	args := ctx.QueryArgs()
	for _, name := range []string{"cursor", "limit"} {
		if len(args.PeekMulti(name)) > 1 {
			fieldProblem(ctx, name, "given twice; give it once")
			return "", 0, false
		}
	}
	cursor = string(args.Peek("cursor"))
	if cursor != "" && !configkey.ValidName(cursor) {
		fieldProblem(ctx, "cursor", "want the next_cursor of the previous page")
		return "", 0, false
	}
	limit = defaultPageSize
	if s := args.Peek("limit"); len(s) > 0 {
		n, err := strconv.Atoi(string(s))
		if err != nil || n < 1 || n > maxPageSize {
			fieldProblem(ctx, "limit", "got %q; want 1 to %d", s, maxPageSize)
			return "", 0, false
		}
		limit = n
	}
	return cursor, limit, true
}

func (a *Admin) listTenants(ctx *fasthttp.RequestCtx) {
	a.listing(ctx, func(c context.Context, cursor string, limit int) (any, error) {
		p, err := a.registry.Tenants(c, cursor, limit)
		out := struct {
			Tenants []TenantBody `json:"tenants"`
			Next    string       `json:"next_cursor,omitempty"`
		}{Tenants: make([]TenantBody, len(p.Items)), Next: p.Next}
		for i, r := range p.Items {
			out.Tenants[i] = tenantBody(r)
		}
		return out, err
	})
}

// listing answers a page of a registry listing: the page arguments read,
// list called with them.
func (a *Admin) listing(ctx *fasthttp.RequestCtx, list func(c context.Context, cursor string, limit int) (any, error)) {
	if !a.registryOn(ctx) {
		return
	}
	cursor, limit, ok := pageArgs(ctx)
	if !ok {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	out, err := list(c, cursor, limit)
	if err != nil {
		storeError(ctx, err)
		return
	}
	writeJSON(ctx, out)
}

func (a *Admin) getTenant(ctx *fasthttp.RequestCtx) {
	getEntry(a, ctx, func(c context.Context) (tenants.Record, bool, error) { return a.registry.Tenant(c, pathID(ctx)) },
		func(r tenants.Record) any { return tenantBody(r) })
}

// getEntry answers one registry entry that get reads, as show shows it.
func getEntry[T any](a *Admin, ctx *fasthttp.RequestCtx, get func(context.Context) (T, bool, error), show func(T) any) {
	if !a.registryOn(ctx) {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	v, found, err := get(c)
	switch {
	case err != nil:
		storeError(ctx, err)
	case !found:
		writeProblem(ctx, problemNotInRegistry)
	default:
		writeJSON(ctx, show(v))
	}
}

var problemNotInRegistry = problem{"about:blank", "Not Found", fasthttp.StatusNotFound, "no such entry in the tenant registry"}

func pathID(ctx *fasthttp.RequestCtx) string {
	id, _ := ctx.UserValue("id").(string)
	return id
}

// putTenant creates or replaces a registry tenant: 201 created, 200
// replaced; the keys issued to it are kept.
func (a *Admin) putTenant(ctx *fasthttp.RequestCtx) {
	id := pathID(ctx)
	status := a.doPutTenant(ctx, id)
	a.audit(ctx, "tenant.put", id, status)
}

func (a *Admin) doPutTenant(ctx *fasthttp.RequestCtx, id string) int {
	if !a.registryOn(ctx) {
		return ctx.Response.StatusCode()
	}
	var spec tenants.Spec
	if err := registry.DecodeStrict(ctx.PostBody(), &spec); err != nil {
		invalid(ctx, fmt.Errorf("the body is not a JSON tenant: %w", err))
		return fasthttp.StatusBadRequest
	}
	if fail := a.checkTenantBody(ctx, id, &spec); fail {
		return ctx.Response.StatusCode()
	}
	file := a.file()
	c, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	// tenants.max counts the file's tenants first; -1 is no cap. A
	// registry tenant the file's of the same ID shadows is counted once,
	// as the file's: the registry's count holds it too.
	room := int64(-1)
	if snap := a.tenants.Load(); snap.Options().Max > 0 {
		shadowed := 0
		for _, p := range snap.Problems() {
			if p.Object == "tenant" && file.HasTenant(p.Name) {
				shadowed++
			}
		}
		room = max(int64(snap.Options().Max-file.Tenants+shadowed), 0)
	}
	created, err := a.registry.PutTenant(c, tenants.Record{Spec: spec}, file.check, room)
	var inv *registry.Invalid
	switch {
	case errors.As(err, &inv):
		invalid(ctx, inv.Err)
	case errors.Is(err, registry.ErrFull):
		writeProblem(ctx, problem{"about:blank", "Conflict", fasthttp.StatusConflict,
			fmt.Sprintf("tenants.max (%d) tenants are served already", a.tenants.Load().Options().Max)})
	case err != nil:
		storeError(ctx, err)
	case created:
		ctx.SetStatusCode(fasthttp.StatusCreated)
		writeJSON(ctx, tenantBody(tenants.Record{Spec: spec}))
	default:
		writeJSON(ctx, tenantBody(tenants.Record{Spec: spec}))
	}
	return ctx.Response.StatusCode()
}

// problemFileTenant refuses a registry write to a tenant the config file
// also defines: the file's is the one served.
var problemFileTenant = problem{"about:blank", "Conflict", fasthttp.StatusConflict, "the config file defines this tenant, and the file's wins: change it there"}

// checkTenantBody refuses what the registry must not store: plain keys, an
// ID that is not the path's or is the file's, a key of another tenant, a
// tenant past tenants.max. It answers and returns true when it refuses.
func (a *Admin) checkTenantBody(ctx *fasthttp.RequestCtx, id string, spec *tenants.Spec) bool {
	file := a.file()
	snap := a.tenants.Load()
	switch {
	case spec.ID != "" && spec.ID != id:
		fieldProblem(ctx, "id", "got %q; want the path's %q, or none", spec.ID, id)
	case len(spec.Keys) > 0:
		fieldProblem(ctx, "keys", "plain keys are not stored: issue one with POST /v1/tenants/{id}/keys, or send key_hashes")
	case file.HasTenant(id):
		writeProblem(ctx, problemFileTenant)
	default:
		for i, k := range spec.RetiringKeys {
			if k.Key != "" {
				fieldProblem(ctx, fmt.Sprintf("retiring_keys[%d].key", i), "plain keys are not stored: send key_hash")
				return true
			}
		}
		// The file's tenants' keys, from the snapshot; the registry's are
		// checked in the write's transaction.
		for i, h := range spec.KeyHashes {
			if owner, ok := snap.KeyOwner(h); ok && owner != id && file.HasTenant(owner) {
				fieldProblem(ctx, fmt.Sprintf("key_hashes[%d]", i), "this key belongs to another tenant")
				return true
			}
		}
		for i, k := range spec.RetiringKeys {
			if owner, ok := snap.KeyOwner(k.KeyHash); ok && owner != id && file.HasTenant(owner) {
				fieldProblem(ctx, fmt.Sprintf("retiring_keys[%d].key_hash", i), "this key belongs to another tenant")
				return true
			}
		}
		spec.ID = id
		return false
	}
	return true
}

func (a *Admin) deleteTenant(ctx *fasthttp.RequestCtx) {
	id := pathID(ctx)
	if a.registryOn(ctx) {
		c, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		switch err := a.registry.DeleteTenant(c, id); {
		case errors.Is(err, registry.ErrNotFound):
			writeProblem(ctx, problemNotInRegistry)
		case err != nil:
			storeError(ctx, err)
		default:
			ctx.SetStatusCode(fasthttp.StatusNoContent)
		}
	}
	a.audit(ctx, "tenant.delete", id, ctx.Response.StatusCode())
}

func (a *Admin) listPlans(ctx *fasthttp.RequestCtx) {
	a.listing(ctx, func(c context.Context, cursor string, limit int) (any, error) {
		p, err := a.registry.Plans(c, cursor, limit)
		if p.Items == nil {
			p.Items = []registry.NamedPlan{}
		}
		return struct {
			Plans []PlanBody `json:"plans"`
			Next  string     `json:"next_cursor,omitempty"`
		}{p.Items, p.Next}, err
	})
}

func (a *Admin) getPlan(ctx *fasthttp.RequestCtx) {
	getEntry(a, ctx, func(c context.Context) (PlanBody, bool, error) { return a.registry.Plan(c, pathName(ctx)) },
		func(p PlanBody) any { return p })
}

func pathName(ctx *fasthttp.RequestCtx) string {
	n, _ := ctx.UserValue("name").(string)
	return n
}

// putPlan creates (201) or replaces (200) a registry plan.
func (a *Admin) putPlan(ctx *fasthttp.RequestCtx) {
	name := pathName(ctx)
	a.doPutPlan(ctx, name)
	a.audit(ctx, "plan.put", "", ctx.Response.StatusCode(), "plan", name)
}

func (a *Admin) doPutPlan(ctx *fasthttp.RequestCtx, name string) {
	if !a.registryOn(ctx) {
		return
	}
	var plan PlanBody
	if err := registry.DecodeStrict(ctx.PostBody(), &plan); err != nil {
		invalid(ctx, fmt.Errorf("the body is not a JSON plan: %w", err))
		return
	}
	if plan.Name != "" && plan.Name != name {
		fieldProblem(ctx, "name", "got %q; want the path's %q, or none", plan.Name, name)
		return
	}
	if _, file := a.file().Plans[name]; file {
		writeProblem(ctx, problem{"about:blank", "Conflict", fasthttp.StatusConflict, "the config file defines this plan, and the file's wins: change it there"})
		return
	}
	plan.Name = name
	c, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	created, err := a.registry.PutPlan(c, plan, func(p PlanBody) error { return tenants.CheckPlan(p.Name, p.Plan) }, a.file().checkStored)
	var inv *registry.Invalid
	var breaks *registry.Breaks
	switch {
	case errors.As(err, &inv):
		invalid(ctx, inv.Err)
	case errors.As(err, &breaks):
		writeProblem(ctx, problem{"about:blank", "Conflict", fasthttp.StatusConflict, breaks.Error()})
	case err != nil:
		storeError(ctx, err)
	default:
		if created {
			ctx.SetStatusCode(fasthttp.StatusCreated)
		}
		writeJSON(ctx, plan)
	}
}

// deletePlan deletes a registry plan no tenant is on (409 otherwise).
func (a *Admin) deletePlan(ctx *fasthttp.RequestCtx) {
	name := pathName(ctx)
	if a.registryOn(ctx) {
		c, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		// The anonymous callers' plan is the file's, and the file's tenants
		// use the file's plans: only registry tenants can be on this one.
		err := a.registry.DeletePlan(c, name)
		var breaks *registry.Breaks
		switch {
		case errors.Is(err, registry.ErrNotFound):
			writeProblem(ctx, problemNotInRegistry)
		case errors.As(err, &breaks):
			writeProblem(ctx, problem{"about:blank", "Conflict", fasthttp.StatusConflict, breaks.Error()})
		case err != nil:
			storeError(ctx, err)
		default:
			ctx.SetStatusCode(fasthttp.StatusNoContent)
		}
	}
	a.audit(ctx, "plan.delete", "", ctx.Response.StatusCode(), "plan", name)
}
