package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

// fixedVerdict is a decider that always answers v.
type fixedVerdict struct{ v degrade.Verdict }

func (f fixedVerdict) Decide(_ context.Context, _ limiter.Request, v *degrade.Verdict) { *v = f.v }

func (f fixedVerdict) Release(limiter.Request, *degrade.Verdict) {}
func (f fixedVerdict) Renew(limiter.Request, *degrade.Verdict)   {}

// decided is a verdict carrying the store's state of the fixture's one
// rule (per_minute, 100 per minute).
func decided(v degrade.Verdict, remaining int64, reset, retry time.Duration) degrade.Verdict {
	v.Decision.N, v.Decision.Allowed = 1, v.Allowed
	v.Decision.Rules[0] = limiter.RuleState{Limit: 100, Remaining: remaining, Reset: reset, RetryAfter: retry}
	return v
}

// TestServeVerdictsAndHeaders drives Serve with every verdict the guard
// gives, and checks the status, whether the upstream was reached, and
// every rate-limit header. No Redis, no YAML, no listener.
func TestServeVerdictsAndHeaders(t *testing.T) {
	const absent = "<absent>"
	cases := []struct {
		name     string
		v        degrade.Verdict
		status   int
		upstream bool
		headers  map[string]string
	}{
		{"allowed", decided(degrade.Verdict{Allowed: true}, 40, 30*time.Second, 0), 200, true, map[string]string{
			"X-Ratelimit-Status": "ok", "X-Ratelimit-Limit": "100", "X-Ratelimit-Remaining": "40", "X-Ratelimit-Reset": "30",
			"Ratelimit-Policy": `"per_minute";q=100;w=60`, "Ratelimit": `"per_minute";r=40;t=30`, "Retry-After": absent,
			"Content-Type": "text/plain; charset=utf-8"}}, // the upstream's
		{"denied", decided(degrade.Verdict{}, 0, 12*time.Second, 11500*time.Millisecond), 429, false, map[string]string{
			"X-Ratelimit-Status": "ok", "X-Ratelimit-Limit": "100", "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "12",
			"Ratelimit-Policy": `"per_minute";q=100;w=60`, "Ratelimit": `"per_minute";r=0;t=12`, "Retry-After": "12",
			"Content-Type": "application/problem+json"}},
		{"degraded, fail open", degrade.Verdict{Allowed: true, Degraded: true}, 200, true, map[string]string{
			"X-Ratelimit-Status": "degraded", "X-Ratelimit-Limit": absent, "Ratelimit": absent, "Retry-After": absent}},
		{"degraded, the store's own reason", decided(degrade.Verdict{Allowed: true, Degraded: true}, 7, time.Second, 0), 200, true,
			map[string]string{"X-Ratelimit-Status": "degraded", "X-Ratelimit-Remaining": "7", "Ratelimit": `"per_minute";r=7;t=1`}},
		{"degraded, denied by the replica", decided(degrade.Verdict{Degraded: true}, 0, 5*time.Second, 5*time.Second), 429, false,
			map[string]string{"X-Ratelimit-Status": "degraded", "Retry-After": "5", "Content-Type": "application/problem+json"}},
		{"refused, fail closed", degrade.Verdict{Degraded: true, Refused: true}, 503, false, map[string]string{
			"X-Ratelimit-Status": "degraded", "X-Ratelimit-Limit": absent, "Retry-After": absent,
			"Content-Type": "application/problem+json"}},
		{"overloaded", degrade.Verdict{Overloaded: true}, 503, false, map[string]string{
			"X-Ratelimit-Status": "overloaded", "X-Ratelimit-Limit": absent, "Retry-After": "1",
			"Content-Type": "application/problem+json"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newServeFixture(t, fixedVerdict{tc.v}, "bulk-key", "GET", "/x")
			if code := f.Serve(); code != tc.status {
				t.Fatalf("status %d (%s); want %d", code, f.Ctx.Response.Body(), tc.status)
			}
			if got := strings.Contains(string(f.Ctx.Response.Body()), "upstream ok"); got != tc.upstream {
				t.Errorf("reached the upstream: %v; want %v", got, tc.upstream)
			}
			for name, want := range tc.headers {
				got := string(f.Ctx.Response.Header.Peek(name))
				if got == "" {
					got = absent
				}
				if got != want {
					t.Errorf("%s: %q; want %q", name, got, want)
				}
			}
		})
	}
}
