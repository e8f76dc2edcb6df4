package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

func TestRateHeaders(t *testing.T) {
	sec := limiter.Rule{Name: "per_second", Limit: 10, Window: time.Second}
	min := limiter.Rule{Name: "per_minute", Limit: 300, Window: time.Minute}
	sub := limiter.Rule{Name: "burst", Limit: 5, Window: 500 * time.Millisecond}
	trial := limiter.Rule{Name: "trial", Limit: 2, Window: time.Minute, Mode: limiter.RuleShadow}
	trial2 := limiter.Rule{Name: "trial2", Limit: 1, Window: time.Second, Mode: limiter.RuleShadow}
	quota := limiter.Rule{Name: "monthly", Limit: 1000, Algorithm: limiter.AlgoFixed, Period: limiter.PeriodMonth}
	const day = 24 * time.Hour
	verdict := func(allowed, degraded bool, states ...limiter.RuleState) degrade.Verdict {
		v := degrade.Verdict{Degraded: degraded, Allowed: allowed}
		v.Decision.Allowed = allowed
		v.Decision.N = len(states)
		copy(v.Decision.Rules[:], states)
		return v
	}
	cases := []struct {
		name  string
		rules []limiter.Rule
		v     degrade.Verdict
		want  map[string]string
	}{
		{
			name:  "allowed, the rule with least remaining is the tightest",
			rules: []limiter.Rule{sec, min},
			v: verdict(true, false,
				limiter.RuleState{Limit: 10, Remaining: 7, Reset: 400 * time.Millisecond},
				limiter.RuleState{Limit: 300, Remaining: 290, Reset: 59 * time.Second}),
			want: map[string]string{
				"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "1",
				"X-RateLimit-Status": "ok", "Retry-After": "",
				"RateLimit-Policy": `"per_second";q=10;w=1, "per_minute";q=300;w=60`,
				"RateLimit":        `"per_second";r=7;t=1, "per_minute";r=290;t=59`,
			},
		},
		{
			name:  "allowed, equal remaining: the one that frees last",
			rules: []limiter.Rule{sec, min},
			v: verdict(true, false,
				limiter.RuleState{Limit: 10, Remaining: 0, Reset: time.Second},
				limiter.RuleState{Limit: 300, Remaining: 0, Reset: 30 * time.Second}),
			want: map[string]string{"X-RateLimit-Limit": "300", "X-RateLimit-Reset": "30"},
		},
		{
			name:  "denied by the minute rule: Retry-After from it, rounded up",
			rules: []limiter.Rule{sec, min},
			v: verdict(false, false,
				limiter.RuleState{Limit: 10, Remaining: 3, Reset: 200 * time.Millisecond},
				limiter.RuleState{Limit: 300, Remaining: 0, Reset: 12*time.Second + time.Millisecond, RetryAfter: 12*time.Second + time.Millisecond}),
			want: map[string]string{
				"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "13", "Retry-After": "13",
				"RateLimit": `"per_second";r=3;t=1, "per_minute";r=0;t=13`,
			},
		},
		{
			name:  "denied by two rules: the longer wait wins",
			rules: []limiter.Rule{sec, min},
			v: verdict(false, false,
				limiter.RuleState{Limit: 10, Remaining: 0, Reset: time.Second, RetryAfter: time.Second},
				limiter.RuleState{Limit: 300, Remaining: 0, Reset: 40 * time.Second, RetryAfter: 40 * time.Second}),
			want: map[string]string{"X-RateLimit-Limit": "300", "Retry-After": "40"},
		},
		{
			name:  "sub-second window and wait: never 0",
			rules: []limiter.Rule{sub},
			v:     verdict(false, false, limiter.RuleState{Limit: 5, Remaining: 0, Reset: 30 * time.Millisecond, RetryAfter: 30 * time.Millisecond}),
			want:  map[string]string{"Retry-After": "1", "RateLimit-Policy": `"burst";q=5;w=1`, "X-RateLimit-Reset": "1"},
		},
		{
			name:  "a shadow rule that would have denied: named, its own policy item, nothing else",
			rules: []limiter.Rule{sec, trial},
			v: verdict(true, false,
				limiter.RuleState{Limit: 10, Remaining: 7, Reset: 400 * time.Millisecond},
				limiter.RuleState{Limit: 2, Remaining: 0, Reset: 30 * time.Second, RetryAfter: 30 * time.Second, Shadow: true}),
			want: map[string]string{
				"X-RateLimit-Shadow": "trial", "X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "1",
				"Retry-After":      "",
				"RateLimit-Policy": `"per_second";q=10;w=1, "trial";q=2;w=60;shadow`,
				"RateLimit":        `"per_second";r=7;t=1`,
			},
		},
		{
			name:  "denied, and two shadow rules would have: Retry-After from the enforced rule",
			rules: []limiter.Rule{trial, sec, trial2},
			v: verdict(false, false,
				limiter.RuleState{Limit: 2, Remaining: 0, Reset: 50 * time.Second, RetryAfter: 50 * time.Second, Shadow: true},
				limiter.RuleState{Limit: 10, Remaining: 0, Reset: time.Second, RetryAfter: time.Second},
				limiter.RuleState{Limit: 1, Remaining: 0, Reset: time.Second, RetryAfter: time.Second, Shadow: true}),
			want: map[string]string{"X-RateLimit-Shadow": "trial, trial2", "Retry-After": "1", "X-RateLimit-Limit": "10",
				"RateLimit": `"per_second";r=0;t=1`},
		},
		{
			name:  "a shadow rule with room: no X-RateLimit-Shadow",
			rules: []limiter.Rule{trial},
			v:     verdict(true, false, limiter.RuleState{Limit: 2, Remaining: 1, Reset: time.Minute, Shadow: true}),
			want: map[string]string{"X-RateLimit-Shadow": "", "X-RateLimit-Limit": "", "RateLimit": "",
				"RateLimit-Policy": `"trial";q=2;w=60;shadow`, "X-RateLimit-Status": "ok"},
		},
		{
			name:  "a quota: an item of its own, w its period's length, Retry-After to the period's end",
			rules: []limiter.Rule{sec, quota},
			v: verdict(false, false,
				limiter.RuleState{Limit: 10, Window: time.Second, Remaining: 9, Reset: time.Second},
				limiter.RuleState{Limit: 1000, Window: 30 * day, Remaining: 0, Reset: 5 * day, RetryAfter: 5 * day}),
			want: map[string]string{"Retry-After": "432000", "X-RateLimit-Limit": "1000", "X-RateLimit-Reset": "432000",
				"RateLimit-Policy": `"per_second";q=10;w=1, "monthly";q=1000;w=2592000`,
				"RateLimit":        `"per_second";r=9;t=1, "monthly";r=0;t=432000`},
		},
		{
			name:  "degraded without a decision: only the status",
			rules: []limiter.Rule{sec},
			v:     verdict(true, true),
			want:  map[string]string{"X-RateLimit-Status": "degraded", "X-RateLimit-Limit": "", "RateLimit": "", "Retry-After": ""},
		},
		{
			name:  "no rules at all",
			rules: nil,
			v:     verdict(true, false),
			want:  map[string]string{"X-RateLimit-Status": "ok", "RateLimit-Policy": ""},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h fasthttp.ResponseHeader
			writeRateHeaders(&h, tc.rules, &tc.v)
			for k, want := range tc.want {
				if got := string(h.Peek(k)); got != want {
					t.Errorf("%s: got %q; want %q", k, got, want)
				}
			}
		})
	}
}

// TestViolatedPoliciesAreEnforcedRules: a 429 names the enforced rules
// that denied, never a shadow rule that would have.
func TestViolatedPoliciesAreEnforcedRules(t *testing.T) {
	rules := []limiter.Rule{{Name: "trial", Limit: 1, Window: time.Hour, Mode: limiter.RuleShadow}, {Name: "per_second", Limit: 1, Window: time.Second}}
	v := degrade.Verdict{Decision: limiter.Decision{N: 2}}
	v.Decision.Rules[0] = limiter.RuleState{Limit: 1, RetryAfter: time.Hour, Shadow: true}
	v.Decision.Rules[1] = limiter.RuleState{Limit: 1, RetryAfter: time.Second}
	var ctx fasthttp.RequestCtx
	writeProblemWith(&ctx, problemQuota, rules, &v)
	if body := string(ctx.Response.Body()); !strings.Contains(body, `"violated-policies":["per_second"]`) {
		t.Fatalf("body %s; want violated-policies [per_second] alone", body)
	}
}

// TestQuotaProblemSaysWhenItResets: a 429 from an exhausted quota names it
// in violated-policies and says in its detail when the period ends; a
// sliding rule's denial adds nothing to the detail.
func TestQuotaProblemSaysWhenItResets(t *testing.T) {
	rules := []limiter.Rule{{Name: "per_second", Limit: 1, Window: time.Second},
		{Name: "monthly", Limit: 1000, Algorithm: limiter.AlgoFixed, Period: limiter.PeriodMonth}}
	v := degrade.Verdict{Decision: limiter.Decision{N: 2}}
	v.Decision.Rules[0] = limiter.RuleState{Limit: 1, RetryAfter: time.Second}
	v.Decision.Rules[1] = limiter.RuleState{Limit: 1000, RetryAfter: 5 * 24 * time.Hour}
	var ctx fasthttp.RequestCtx
	before := time.Now()
	writeProblemWith(&ctx, problemQuota, rules, &v)
	var body struct {
		Detail   string   `json:"detail"`
		Violated []string `json:"violated-policies"`
	}
	if err := json.Unmarshal(ctx.Response.Body(), &body); err != nil {
		t.Fatalf("body %s: %v", ctx.Response.Body(), err)
	}
	if strings.Join(body.Violated, ",") != "per_second,monthly" {
		t.Fatalf("violated-policies %v; want [per_second monthly]", body.Violated)
	}
	after := time.Now()
	want := func(now time.Time) string {
		return `; quota "monthly" resets at ` + now.Add(5*24*time.Hour).UTC().Round(time.Second).Format(time.RFC3339) + " (in 432000 s)"
	}
	if !strings.HasSuffix(body.Detail, want(before)) && !strings.HasSuffix(body.Detail, want(after)) || strings.Count(body.Detail, "quota \"") != 1 {
		t.Fatalf("detail %q; want it to end %q, naming the quota alone", body.Detail, want(before))
	}
}

// TestRateFieldIsExactlyOurs: our fields in any ASCII case are ours; a
// name that only folds to one through a non-ASCII letter, or differs by a
// byte, is the upstream's.
func TestRateFieldIsExactlyOurs(t *testing.T) {
	for _, name := range []string{"X-RateLimit-Status", "x-ratelimit-remaining", "RATELIMIT-POLICY", "RateLimit", "X-Ratelimit-Shadow"} {
		if !rateField([]byte(name)) {
			t.Errorf("%q: not ours", name)
		}
	}
	for _, name := range []string{"X-RateLimit-ſtatus", "X-RateLimit-Statuses", "RateLimit-", "X-RateLimit-Statu", "Ratelimit-Policy-X", "Content-Type"} {
		if rateField([]byte(name)) {
			t.Errorf("%q: taken for ours", name)
		}
	}
}
