package admin

import (
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Reload results.
const (
	ReloadOK              = "ok"               // applied
	ReloadUnchanged       = "unchanged"        // nothing to apply
	ReloadInvalid         = "invalid"          // refused: the config does not load or build
	ReloadRestartRequired = "restart_required" // refused: it changes keys read only at start
)

// ReloadResult is what one config reload did.
type ReloadResult struct {
	// Result is ReloadOK, ReloadUnchanged, ReloadInvalid or
	// ReloadRestartRequired.
	Result string `json:"result"`
	// Trigger is what asked for it: "signal", "file" or "api".
	Trigger string    `json:"trigger"`
	At      time.Time `json:"at"`
	// Error says why a reload was refused.
	Error string `json:"error,omitempty"`
	// RestartKeys are the changed keys that need a restart.
	RestartKeys []string `json:"restart_keys,omitempty"`
}

// Refused reports whether the reload was refused (the old config serves).
func (r ReloadResult) Refused() bool {
	return r.Result == ReloadInvalid || r.Result == ReloadRestartRequired
}

// reload is POST /v1/reload: re-read the config now. 200 with the result
// when it was applied or unchanged; a problem when it was refused: 400 for
// an invalid config, 409 for one that needs a restart.
func (a *Admin) reload(ctx *fasthttp.RequestCtx) {
	r := a.reloader("api")
	switch r.Result {
	case ReloadInvalid:
		writeProblem(ctx, problem{"about:blank", "Bad Request", fasthttp.StatusBadRequest, "config refused, the old one serves: " + r.Error})
	case ReloadRestartRequired:
		writeProblem(ctx, problem{"about:blank", "Conflict", fasthttp.StatusConflict,
			"config refused, the old one serves: these keys take a restart: " + strings.Join(r.RestartKeys, ", ")})
	default:
		writeJSON(ctx, r)
	}
	a.audit(ctx, "reload", "", ctx.Response.StatusCode())
}
