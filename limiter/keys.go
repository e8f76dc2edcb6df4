package limiter

import (
	"strconv"
	"strings"
)

// Key is the Redis key of a tenant's rule: <prefix>:{<tenant>}:<rule>. The
// hash tag puts every key of a tenant in one cluster slot, so one script
// touches one slot. Tenant IDs and rule names are validated to exclude
// braces, so no two (tenant, rule) pairs share a key.
func Key(prefix, tenant, rule string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(tenant) + len(rule) + 4)
	b.WriteString(prefix)
	b.WriteString(":{")
	b.WriteString(tenant)
	b.WriteString("}:")
	b.WriteString(rule)
	return b.String()
}

// ShadowKey is the Redis key of a tenant's shadow rule:
// <prefix>:{<tenant>}:shadow:<rule>. Rule names have no colon, so it is
// never an enforced rule's key: a shadow rule never shares a count with an
// enforced rule of the same name.
func ShadowKey(prefix, tenant, rule string) string {
	return Key(prefix, tenant, shadowInfix+rule)
}

// shadowInfix comes between a shadow rule's tenant and its name.
const shadowInfix = "shadow:"

// LeaseKey is the Redis key of a tenant's concurrency limit (a Lease
// rule): <prefix>:{<tenant>}:lease:<rule>, a sorted set of the leases held,
// scored by when each was taken.
func LeaseKey(prefix, tenant, rule string) string {
	return Key(prefix, tenant, leaseInfix+rule)
}

// leaseInfix comes between a Lease rule's tenant and its name.
const leaseInfix = "lease:"

// ReservedRuleName reports whether name may not name a rule: the words
// of shadowInfix and leaseInfix. A sliding-window rule named "lease" would
// have the key <prefix>:{<tenant>}:lease:sw, a Lease rule's named "sw";
// "shadow" meets a shadow rule the same way.
func ReservedRuleName(name string) bool {
	return name+":" == leaseInfix || name+":" == shadowInfix
}

// ruleKey is r's key: Key, ShadowKey for a shadow rule, LeaseKey for a
// Lease rule, then the suffix of its algorithm (appendKeySuffix); start
// is a fixed rule's period start (unix µs).
func ruleKey(prefix, tenant string, r Rule, start int64) string {
	k := Key(prefix, ruleTag(tenant, r), ruleInfix(r)+r.Name)
	if !r.Counted() {
		return k
	}
	var sfx [32]byte
	return k + string(appendKeySuffix(sfx[:0], r, start))
}

// ruleTag is what r counts under, the hash tag of its key: the tenant,
// or a shared limit's scope.
func ruleTag(tenant string, r Rule) string {
	if r.Scope != "" {
		return r.Scope
	}
	return tenant
}

// ruleInfix comes between r's tenant and its name in its key.
func ruleInfix(r Rule) string {
	switch {
	case r.Lease:
		return leaseInfix
	case r.Shadow():
		return shadowInfix
	}
	return ""
}

// appendKeySuffix appends what follows a counter rule's name in its key,
// so that a rule that changes algorithm never meets a key of another
// type: ":sw" for a sliding window, ":fixed:<period start, unix s>" for a
// fixed rule (a key per period: gateways whose clocks straddle the period's
// end count in two keys instead of resetting each other's). Nothing for a
// sliding log.
func appendKeySuffix(b []byte, r Rule, start int64) []byte {
	switch r.algo() {
	case algoWindow:
		return append(b, ":sw"...)
	case algoFixed:
		return strconv.AppendInt(append(b, ":fixed:"...), start/1e6, 10)
	}
	return b
}
