package app

import (
	"context"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Credential files read again after a change, by result.
var (
	secretReloadsOK    = metrics.NewCounter(`l1gw_credential_reloads_total{result="ok"}`)
	secretReloadsError = metrics.NewCounter(`l1gw_credential_reloads_total{result="error"}`)
)

// secretsEvery is how often credential files are checked when
// server.config_reload_interval is 0.
const secretsEvery = 2 * time.Second

// watchSecrets checks the credential files (server.admin_token_file,
// redis.password_file, redis.sentinel_password_file) every interval until
// ctx ends. A changed one is taken at once: the admin token for the next
// call, a Redis password for the next connection dialed (those open stay
// open). A file that cannot be read keeps the credential read before.
func (a *App) watchSecrets(ctx context.Context, interval time.Duration) {
	if a.adminToken == nil && a.clients == nil {
		return
	}
	if interval <= 0 {
		interval = secretsEvery
	}
	failing := map[string]bool{}
	report := func(key string, err error) {
		if err != nil {
			secretReloadsError.Inc()
			if !failing[key] {
				a.log.Error("credential file not read; the credential read before stays", "key", key, "err", err.Error())
			}
			failing[key] = true
			return
		}
		failing[key] = false
	}
	every(ctx, interval, func() {
		if a.adminToken != nil {
			changed, err := a.adminToken.Check()
			report(a.adminToken.Key, err)
			if changed {
				a.admin.SetToken(a.adminToken.Value())
				secretReloadsOK.Inc()
				a.log.Info("credential file changed: in use from now on", "key", a.adminToken.Key)
			}
		}
		if a.clients != nil {
			changed, err := a.clients.ReloadSecrets()
			report("redis", err)
			for _, key := range changed {
				secretReloadsOK.Inc()
				a.log.Info("credential file changed: new Redis connections use it", "key", key)
			}
		}
	})
}
