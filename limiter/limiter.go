// Package limiter decides whether a request fits its rate limits.
//
// The algorithm is a sliding log: every admitted request is recorded with
// its time, and a rule admits a request while the recorded cost inside the
// rule's window plus the request's cost stays within the limit. All rules of
// a request are decided together: a request is admitted only when every rule
// has room, and only then is it recorded in every rule. Denied requests are
// never recorded. A shadow rule (Rule.Mode "shadow") takes part in the same
// decision without a say in it: it reports whether it would have denied,
// and records the admitted requests it had room for, in keys of its own.
//
// Being over a limit is a value (Decision.Allowed == false), never an error.
// A Store returns an error only when it could not decide; turning that into
// a verdict is the degrade package's job.
package limiter

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MaxRules is the most rules one request may be decided against: a
// tenant's (at most MaxTenantRules), its route's shared limits (at most
// MaxRouteRules) and its upstream's (at most MaxSharedRules). Config
// validation enforces it, so a Decision needs no allocation.
const MaxRules = MaxTenantRules + MaxRouteRules + MaxSharedRules

// MaxTenantRules is the most rules of a tenant's own that apply to a
// request: its plan's, its own, its route's and its concurrency limit.
const MaxTenantRules = 16

// MaxCost is the largest cost a rule may have: 2^53, the largest integer
// the decide script's Lua numbers (doubles) hold exactly. A limit has no
// bound of its own: one past 2^53 (an "unlimited" 2^63-1) is compared
// inexactly by the script, which is harmless that far from any count.
const MaxCost = 1 << 53

// MaxLogCost is the largest cost of a sliding log's rule: the log keeps
// one member per unit, so an admitted request of cost n has the script add
// n members while Redis serves no one else (about 3 µs each; a cost of
// 300 000 held Redis for 0.9 s). A heavier weight belongs to a
// sliding_window or fixed rule, which add it to a counter.
const MaxLogCost = 1000

// MaxSharedRules is the most shared limits an upstream may have.
const MaxSharedRules = 4

// MaxRouteRules is the most shared limits a route may have, its
// concurrency limit included.
const MaxRouteRules = 4

// ErrTooManyRules is returned by a Store asked to decide more than MaxRules rules.
var ErrTooManyRules = errors.New("limiter: too many rules")

// Rule is one limit: at most Limit units of cost in any rolling Window.
// A shadow rule (Mode "shadow") is decided and recorded in keys of its own
// but never denies: its state says what it would have decided.
type Rule struct {
	// Name identifies the rule within its tenant; it names the policy in
	// the RateLimit headers. Required.
	Name string `koanf:"name" json:"name"`
	// Limit is the most cost admitted per window. Required, > 0.
	Limit int64 `koanf:"limit" json:"limit"`
	// Window is the length of the rolling window. Required, > 0.
	Window time.Duration `koanf:"window" json:"window"`
	// Cost is what one request consumes. Default 1.
	Cost int64 `koanf:"cost" json:"cost,omitempty"`
	// Mode is RuleEnforce (or "", the same) or RuleShadow. Default
	// "enforce".
	Mode string `koanf:"mode" json:"mode,omitempty"`
	// Algorithm is how the rule counts: AlgoSlidingLog (or "", the same),
	// AlgoSlidingWindow or AlgoFixed. Default "sliding_log".
	Algorithm string `koanf:"algorithm" json:"algorithm,omitempty"`
	// Period is a fixed rule's calendar period: PeriodDay, PeriodWeek or
	// PeriodMonth. Required for AlgoFixed, which has no Window.
	Period string `koanf:"period" json:"period,omitempty"`
	// Timezone is the IANA zone a fixed rule's periods start in. Default
	// "UTC".
	Timezone string `koanf:"timezone" json:"timezone,omitempty"`
	// Anchor is the day of the month a monthly period starts on (1–31,
	// clamped to the month's length). Default 1.
	Anchor int `koanf:"anchor" json:"anchor,omitempty"`
	// Scope, when set, makes the rule a shared limit: counted under Scope
	// instead of the request's tenant, for every tenant alike (an
	// upstream's limits: "upstream:<name>"). Its key's hash tag is the
	// scope: a Cluster slot of its own. Set by upstream, never read from
	// config.
	Scope string `koanf:"-" json:"-"`
	// Lease makes the rule a concurrency limit: Limit requests in flight
	// at once, each holding a lease from its decision until Release (or
	// until Window passes, if its gateway never releases it). Set by
	// tenants for a plan's concurrency, never read from config.
	Lease bool `koanf:"-" json:"-"`
}

// RetryLease is the Retry-After of a request refused by a concurrency
// limit: a lease is given back when a response ends, so soon.
const RetryLease = time.Second

// Rule modes (Rule.Mode).
const (
	// RuleEnforce: the rule denies a request it has no room for.
	RuleEnforce = "enforce"
	// RuleShadow: the rule is decided and recorded as if enforced, in
	// keys of its own, but never denies; a request it would have denied
	// is not recorded in it.
	RuleShadow = "shadow"
)

// Shadow reports whether r is a shadow rule.
func (r Rule) Shadow() bool { return r.Mode == RuleShadow }

// CostOrOne is the rule's cost per request, 1 when unset.
func (r Rule) CostOrOne() int64 {
	if r.Cost <= 0 {
		return 1
	}
	return r.Cost
}

// String prints the rule as "per_second: 10 per 1s", "burst: 10 per 1s
// (sliding_window)" or "monthly: 1000 per month", with " (shadow)" after
// a shadow rule.
func (r Rule) String() string {
	s := fmt.Sprintf("%s: %d per %s", r.Name, r.Limit, r.Window)
	switch r.algo() {
	case algoWindow:
		s += " (" + AlgoSlidingWindow + ")"
	case algoFixed:
		s = fmt.Sprintf("%s: %d per %s", r.Name, r.Limit, r.Period)
	}
	if r.Shadow() {
		s += " (shadow)"
	}
	return s
}

// Request is what a Store decides on.
type Request struct {
	// Tenant scopes the rules: two tenants never share a count.
	Tenant string
	// Rules are decided together, all or nothing (shadow rules aside).
	// At most MaxRules.
	Rules []Rule
}

// RuleState is one rule's outcome for a request.
type RuleState struct {
	// Limit is the rule's limit.
	Limit int64
	// Window is the window the rule counts over: Rule.Window, or a fixed
	// rule's current period's length.
	Window time.Duration
	// Remaining is the cost still admissible in the window after this
	// decision (after recording the request when it was admitted).
	Remaining int64
	// Reset is how long until the oldest recorded request leaves the
	// window and frees capacity; zero when nothing is recorded.
	Reset time.Duration
	// RetryAfter is how long until this request would fit; zero unless
	// this rule denied it (a shadow rule: would have denied it).
	RetryAfter time.Duration
	// Shadow is true for a shadow rule's state: what the rule would have
	// decided. It takes no part in Decision.Allowed or RetryAfter.
	Shadow bool
	// Lease is true for a concurrency limit's state (a Lease rule):
	// Remaining counts requests in flight, not in a window.
	Lease bool
	// Undecided is true when the rule was not decided: the store could
	// not answer and only the concurrency limits were, locally; or, on
	// Redis Cluster, a shared limit was not asked because a call before
	// it refused the request. Its other fields are zero.
	Undecided bool
}

// Denied reports whether this rule refused the request, or for a shadow
// rule whether it would have.
func (s RuleState) Denied() bool { return s.RetryAfter > 0 }

// Decision is the outcome of one request against all of its rules.
type Decision struct {
	// Allowed is true when every enforced rule had room and the request
	// was recorded.
	Allowed bool
	// Degraded is true when the store decided but cannot stand behind the
	// decision: Why says why.
	Degraded bool
	// Why is the cause of Degraded, one of the Why constants; "" when not
	// degraded.
	Why string
	// Cached is true when the store answered from its own memory (a
	// denial it remembers) without asking Redis: the answer says nothing
	// of Redis' health.
	Cached bool
	// N is how many entries of Rules are set, in the order of Request.Rules.
	N int
	// Seq identifies the decision's record in its store: Release takes it
	// to give back the leases of an admitted request.
	Seq uint64
	// Rules holds one state per rule of the request.
	Rules [MaxRules]RuleState
}

// Why a store marks a decision degraded (Decision.Why).
const (
	// WhyRecorder: replica consistency while its records do not reach the
	// primary, so other gateways do not see them.
	WhyRecorder = "recorder"
	// WhyEvicting: the primary is evicting keys, so the records the
	// decision counted may be incomplete.
	WhyEvicting = "evicting"
	// WhyUnconfirmed: Sentinel reports the primary down or failing over
	// (see nodeHealth): its writes may be discarded by the failover.
	WhyUnconfirmed = "unconfirmed"
	// WhyRestarted: the primary restarted (a new run_id at its address),
	// or Sentinel named another one (a failover), within the window: the
	// records the decision counted may be gone.
	WhyRestarted = "restarted"
)

// States returns the per-rule states, in the order of Request.Rules.
func (d *Decision) States() []RuleState { return d.Rules[:d.N] }

// RetryAfter is the longest RetryAfter of the denying enforced rules: the
// time until every enforced rule has room again. Zero when allowed.
func (d *Decision) RetryAfter() time.Duration {
	var longest time.Duration
	for _, s := range d.States() {
		if !s.Shadow {
			longest = max(longest, s.RetryAfter)
		}
	}
	return longest
}

// ShadowDenied reports whether a shadow rule would have denied the request.
func (d *Decision) ShadowDenied() bool {
	for _, s := range d.States() {
		if s.Shadow && s.Denied() {
			return true
		}
	}
	return false
}

// Store decides requests against shared state.
type Store interface {
	// Decide reports, for every rule, whether the request fits, and
	// records it in every rule when all of them do.
	// err != nil only when the store could not answer.
	Decide(ctx context.Context, req Request) (Decision, error)
}

// RuleUsage is what a rule has used so far, read without recording.
type RuleUsage struct {
	// Rule is the rule.
	Rule Rule
	// Used is the cost recorded inside the window.
	Used int64
	// Reset is how long until the oldest recorded request leaves the window.
	Reset time.Duration
}

// Remaining is the cost still admissible.
func (u RuleUsage) Remaining() int64 { return max(u.Rule.Limit-u.Used, 0) }
