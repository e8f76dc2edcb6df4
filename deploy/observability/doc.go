// Package observability holds no code: its tests check the Grafana
// dashboard and the Prometheus rules beside it against the gateway's
// /metrics (see README "Dashboards and alerts").
package observability
