package config

import (
	"reflect"
	"strings"
)

// hotKeys are the keys a running gateway takes on a reload: the tenants,
// plans, routes and upstreams, and what becomes of unknown callers. Every
// other key (the listeners, Redis, the limiter, the log, the key header)
// is read once, at start.
var hotKeys = map[string]bool{
	"plans": true, "tenant_list": true, "upstreams": true, "routes": true,
	"tenants.unknown": true, "tenants.anonymous_plan": true, "tenants.anonymous_ipv6_prefix": true,
}

// RestartKeys lists, as dotted key paths, the settings that differ between
// old and cur and that a running gateway takes only at start. A reload
// with any of them is refused whole: nothing is half-applied.
func RestartKeys(old, cur *Config) []string {
	var out []string
	diffKeys(reflect.ValueOf(*old), reflect.ValueOf(*cur), "", &out)
	return out
}

// diffKeys appends the paths of the leaves that differ between a and b,
// two values of one type, skipping the hot keys.
func diffKeys(a, b reflect.Value, path string, out *[]string) {
	if a.Kind() != reflect.Struct {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, path)
		}
		return
	}
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		if opts == "squash" {
			diffKeys(a.Field(i), b.Field(i), path, out)
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		if path != "" {
			name = path + "." + name
		}
		if !hotKeys[name] {
			diffKeys(a.Field(i), b.Field(i), name, out)
		}
	}
}
