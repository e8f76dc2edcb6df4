package limiter

import "strings"

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
