package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// unknownKeys lists every key in data that t has no field for, walking
// sections, maps and lists the way decoding does.
func unknownKeys(data any, t reflect.Type, path string, layers []*layer) Errors {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out Errors
	switch t.Kind() {
	case reflect.Struct:
		m, ok := data.(map[string]any)
		if !ok {
			return nil // a type error; decoding reports it
		}
		fields := map[string]reflect.Type{}
		collectFields(t, fields)
		for k, v := range m {
			key := strings.TrimPrefix(path+"."+k, ".")
			ft, known := fields[k]
			if !known {
				out = append(out, &Error{Key: key, Source: sourceOf(key, layers), Msg: "unknown key"})
				continue
			}
			out = append(out, unknownKeys(v, ft, key, layers)...)
		}
	case reflect.Map:
		if m, ok := data.(map[string]any); ok {
			for k, v := range m {
				out = append(out, unknownKeys(v, t.Elem(), path+"."+k, layers)...)
			}
		}
	case reflect.Slice:
		switch l := data.(type) {
		case []any:
			for i, v := range l {
				out = append(out, unknownKeys(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i), layers)...)
			}
		case map[string]any:
			// L1GW_ROUTES__UPSTREAM=x, or L1GW_ROUTES__0__UPSTREAM=x: decoding
			// would wrap the map into a list of one, silently replacing the
			// file's whole list. (The file's own `routes: {…}` without a
			// dash has always been taken as a list of one, and still is.)
			if setByStrings(path, layers) {
				out = append(out, &Error{Key: path, Source: sourceOf(path, layers),
					Msg: "want a list; a list of objects is set whole, in the config file: the environment and --set cannot set one of its items"})
			}
		}
	}
	return out
}

// setByStrings reports whether the environment or a --set flag sets path
// or a key under it.
func setByStrings(path string, layers []*layer) bool {
	for _, l := range layers {
		if (l.name == "environment" || l.name == "--set") && l.k.Exists(path) {
			return true
		}
	}
	return false
}

// collectFields maps a struct's koanf names to field types, flattening
// ",squash" fields.
func collectFields(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		if opts == "squash" {
			collectFields(f.Type, out)
			continue
		}
		if name != "" && name != "-" {
			out[name] = f.Type
		}
	}
}

// unused reports keys a source sets that nothing would read with the rest
// of the config: accepted in silence, they would mislead. The defaults set
// every key, so only the other layers count.
func unused(c *Config, layers []*layer) Errors {
	var out Errors
	report := func(key, why string) {
		for _, l := range layers[1:] {
			if l.k.Exists(key) {
				out = append(out, &Error{Key: key, Source: sourceOf(key, layers), Msg: why})
				return
			}
		}
	}
	if c.Tenants.Source == tenants.SourceConfig {
		report("tenants.refresh", "set, but tenants.source is config: it paces re-reading the Redis registry")
	}
	if c.Redis.Mode == limiter.ModeMemory {
		for _, k := range redisKeys {
			report("redis."+k, "set, but redis.mode is memory: set redis.mode too")
		}
	}
	return out
}

// redisKeys are the redis section's keys that only a Redis mode reads:
// every key of limiter.RedisOptions but mode and addrs.
var redisKeys = func() []string {
	t := reflect.TypeOf(limiter.RedisOptions{})
	var keys []string
	for i := range t.NumField() {
		if k := t.Field(i).Tag.Get("koanf"); k != "" && k != "mode" && k != "addrs" {
			keys = append(keys, k)
		}
	}
	return keys
}()
