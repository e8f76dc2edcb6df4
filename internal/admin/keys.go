package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/registry"
	"github.com/l1gw/l1gw/tenants"
)

// IssueRequest is the optional body of POST /v1/tenants/{id}/keys.
type IssueRequest struct {
	// ExpiresAt is when the new key stops working; with RotateFrom, when
	// the rotated key does (required then; the new key does not expire).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// RotateFrom is the key ID of the key the new one replaces.
	RotateFrom string `json:"rotate_from,omitempty"`
}

// IssuedKey is the answer of POST /v1/tenants/{id}/keys: the only time the
// key is shown.
type IssuedKey struct {
	KeyID string `json:"key_id"`
	Key   string `json:"key"`
}

// KeyInfo is one key of GET /v1/tenants/{id}/keys.
type KeyInfo struct {
	KeyID     string    `json:"key_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// LastUsedAt is approximate: gathered in memory by each gateway and
	// written every few seconds.
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

// issueKey issues a key (201), or rotates one: the new key, and the old
// one valid until the body's expires_at.
func (a *Admin) issueKey(ctx *fasthttp.RequestCtx) {
	id := pathID(ctx)
	keyID, action := a.doIssueKey(ctx, id)
	a.audit(ctx, action, id, ctx.Response.StatusCode(), "key_id", keyID)
}

func (a *Admin) doIssueKey(ctx *fasthttp.RequestCtx, tenant string) (keyID, action string) {
	action = "key.issue"
	if !a.registryOn(ctx) {
		return "", action
	}
	if a.file().HasTenant(tenant) {
		// The file's tenant wins, so a key issued to the registry's
		// shadowed one would never be served: refused, as a PUT is.
		writeProblem(ctx, problemFileTenant)
		return "", action
	}
	var in IssueRequest
	if body := bytes.TrimSpace(ctx.PostBody()); len(body) > 0 {
		if err := registry.DecodeStrict(body, &in); err != nil {
			invalid(ctx, fmt.Errorf("the body is not a JSON key request: %w", err))
			return "", action
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	in.ExpiresAt = in.ExpiresAt.UTC() // stored and checked in UTC: -08:00 may cross a year
	if !in.ExpiresAt.IsZero() && (!in.ExpiresAt.After(now) || in.ExpiresAt.Year() > 2200) {
		fieldProblem(ctx, "expires_at", "got %s; want a time after now and before the year 2200", in.ExpiresAt.Format(time.RFC3339))
		return "", action
	}
	key, secret := newKey(now)
	var rot *registry.Rotation
	if in.RotateFrom != "" {
		action = "key.rotate"
		if in.ExpiresAt.IsZero() {
			fieldProblem(ctx, "expires_at", "required with rotate_from: when the old key stops working")
			return "", action
		}
		if !validKeyID(in.RotateFrom) {
			fieldProblem(ctx, "rotate_from", "want a key_id (k and 16 hex digits); the value is not shown, in case it is a key")
			return "", action
		}
		rot = &registry.Rotation{KeyID: in.RotateFrom, ExpiresAt: in.ExpiresAt}
	} else if !in.ExpiresAt.IsZero() {
		key.ExpiresAt = in.ExpiresAt
	}
	c, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	var inv *registry.Invalid
	switch err := a.registry.AddKey(c, tenant, key, rot, a.file().check); {
	case errors.As(err, &inv):
		invalid(ctx, inv.Err)
	case errors.Is(err, registry.ErrNotFound):
		writeProblem(ctx, problemNotInRegistry)
	case errors.Is(err, registry.ErrNoKey):
		fieldProblem(ctx, "rotate_from", "the tenant has no issued key %q", in.RotateFrom)
	case errors.Is(err, registry.ErrTooManyKeys):
		writeProblem(ctx, problem{"about:blank", "Conflict", fasthttp.StatusConflict, err.Error()})
	case err != nil:
		storeError(ctx, err)
	default:
		ctx.SetStatusCode(fasthttp.StatusCreated)
		ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
		writeJSON(ctx, IssuedKey{KeyID: key.KeyID, Key: secret})
		return key.KeyID, action
	}
	return "", action
}

// validKeyID reports whether s has the form of a key ID: k and 16 hex
// digits. Anything else is neither echoed nor logged.
func validKeyID(s string) bool {
	if len(s) != 17 || s[0] != 'k' {
		return false
	}
	_, err := hex.DecodeString(s[1:])
	return err == nil
}

// newKey returns a new key, as stored (its digest) and in plain.
func newKey(now time.Time) (tenants.IssuedKey, string) {
	var id [8]byte
	var secret [24]byte
	if _, err := rand.Read(id[:]); err != nil {
		panic("BUG: crypto/rand: " + err.Error())
	}
	if _, err := rand.Read(secret[:]); err != nil {
		panic("BUG: crypto/rand: " + err.Error())
	}
	plain := "l1gw_" + base64.RawURLEncoding.EncodeToString(secret[:])
	return tenants.IssuedKey{KeyID: "k" + hex.EncodeToString(id[:]), KeyHash: tenants.HashKey(plain), CreatedAt: now}, plain
}

func (a *Admin) listKeys(ctx *fasthttp.RequestCtx) {
	if !a.registryOn(ctx) {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	rec, found, err := a.registry.Tenant(c, pathID(ctx))
	if err == nil && !found {
		writeProblem(ctx, problemNotInRegistry)
		return
	}
	ids := make([]string, len(rec.Issued))
	for i, k := range rec.Issued {
		ids[i] = k.KeyID
	}
	var used []int64
	if err == nil {
		used, err = a.registry.LastUsed(c, ids)
	}
	if err != nil {
		storeError(ctx, err)
		return
	}
	out := struct {
		Keys []KeyInfo `json:"keys"`
	}{Keys: make([]KeyInfo, len(rec.Issued))}
	for i, k := range rec.Issued {
		out.Keys[i] = KeyInfo{KeyID: k.KeyID, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt}
		if used[i] > 0 {
			out.Keys[i].LastUsedAt = time.Unix(used[i], 0).UTC()
		}
	}
	writeJSON(ctx, out)
}

// revokeKey removes an issued key: 204; refused from the next snapshot on.
func (a *Admin) revokeKey(ctx *fasthttp.RequestCtx) {
	id := pathID(ctx)
	keyID, _ := ctx.UserValue("key_id").(string)
	if !validKeyID(keyID) {
		keyID = "(not a key id)" // never logged: it may be a key pasted by mistake
	}
	if a.registryOn(ctx) {
		c, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		switch err := a.registry.RevokeKey(c, id, keyID); {
		case errors.Is(err, registry.ErrNotFound):
			writeProblem(ctx, problemNotInRegistry)
		case errors.Is(err, registry.ErrNoKey):
			writeProblem(ctx, problem{"about:blank", "Not Found", fasthttp.StatusNotFound, "the tenant has no issued key of this id"})
		case err != nil:
			storeError(ctx, err)
		default:
			ctx.SetStatusCode(fasthttp.StatusNoContent)
		}
	}
	a.audit(ctx, "key.revoke", id, ctx.Response.StatusCode(), "key_id", keyID)
}
