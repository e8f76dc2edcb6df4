package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/v2"
)

func decode(k *koanf.Koanf, c *Config) error {
	return k.UnmarshalWithConf("", c, koanf.UnmarshalConf{
		DecoderConfig: &mapstructure.DecoderConfig{
			TagName:          "koanf",
			WeaklyTypedInput: true, // env and --set values are strings
			// Unknown keys are found by unknownKeys: mapstructure stops
			// looking for them in a section with a bad value.
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				durationHook,
				scalarHook,
				timeHook,
				mapstructure.StringToSliceHookFunc(","),
			),
		},
	})
}

var durationType = reflect.TypeOf(time.Duration(0))

// durationHook parses Go durations ("10ms", "1m") and refuses bare numbers,
// which weak typing would otherwise read as nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch v := data.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("got %q; want a duration such as 10ms, 5s or 1m", v)
		}
		return d, nil
	case int, int64, uint64, float64:
		if reflect.ValueOf(v).IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("got %v; want a duration with a unit, such as 10ms, 5s or 1m", v)
	}
	return data, nil
}

// scalarHook keeps weak typing to strings (env and --set): a number where
// an integer belongs must be a whole number in its range, and a bool is
// not a number nor a number a bool. Weak typing alone read limit: true as
// 1, cost: 1.99 as 1, pprof: 1 as true, and max_conns past int64 as its
// minimum.
func scalarHook(from, to reflect.Type, data any) (any, error) {
	if to == durationType {
		return data, nil
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		switch v := data.(type) {
		case string:
			// Decimal: weak typing reads "010" as 8 and "0x10" as 16.
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || reflect.Zero(to).OverflowInt(n) {
				return nil, fmt.Errorf("got %q; want a decimal integer in %s's range", v, to)
			}
			return n, nil
		case bool:
			return nil, fmt.Errorf("got %v; want an integer", v)
		case float64:
			if v != math.Trunc(v) || v < math.MinInt64 || v >= math.MaxInt64 || reflect.Zero(to).OverflowInt(int64(v)) {
				return nil, fmt.Errorf("got %v; want an integer in %s's range", v, to)
			}
			return int64(v), nil
		case uint64:
			if v > math.MaxInt64 || reflect.Zero(to).OverflowInt(int64(v)) {
				return nil, fmt.Errorf("got %v; want an integer in %s's range", v, to)
			}
		case int:
			if reflect.Zero(to).OverflowInt(int64(v)) {
				return nil, fmt.Errorf("got %v; want an integer in %s's range", v, to)
			}
		}
	case reflect.Bool:
		switch v := data.(type) {
		case int, int64, uint64, float64:
			return nil, fmt.Errorf("got %v; want true or false", v)
		case string:
			// Weak typing reads "" as false: L1GW_TENANTS__HIDE_KEY= turned
			// hide_key off.
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("got %q; want true or false", v)
			}
			return b, nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		if v, ok := data.(string); ok && strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("got %q; want a number", v)
		}
	}
	return data, nil
}

var timeType = reflect.TypeOf(time.Time{})

// timeHook parses RFC 3339 times ("2026-12-01T00:00:00Z"); YAML may have
// parsed one already.
func timeHook(from, to reflect.Type, data any) (any, error) {
	if to != timeType {
		return data, nil
	}
	switch v := data.(type) {
	case string:
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("got %q; want an RFC 3339 time such as 2026-12-01T00:00:00Z", v)
		}
		return t, nil
	case time.Time:
		return v, nil
	}
	return nil, fmt.Errorf("got %v; want an RFC 3339 time such as 2026-12-01T00:00:00Z", data)
}

var mapIndex = regexp.MustCompile(`\[([^\]]*[^\]0-9][^\]]*)\]`)

// keyPath turns mapstructure's "plans[free].limits[0]" into the config
// spelling "plans.free.limits[0]".
func keyPath(name string) string {
	return strings.TrimPrefix(mapIndex.ReplaceAllString(name, ".$1"), ".")
}

// attribute turns decoding and validation errors into Errors, each naming
// its key and the source that set it.
func attribute(err error, layers []*layer) Errors {
	var out Errors
	if err == nil {
		return nil
	}
	var walk func(err error)
	walk = func(err error) {
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case *mapstructure.DecodeError:
			inner := e.Unwrap()
			if _, nested := inner.(interface{ Unwrap() []error }); nested {
				walk(inner)
				return
			}
			key, msg := keyPath(e.Name()), inner.Error()
			var pe *mapstructure.ParseError
			if errors.As(inner, &pe) {
				msg = fmt.Sprintf("got %q; want a value of type %s", fmt.Sprint(pe.Value), pe.Expected.Type())
			}
			out = append(out, &Error{Key: key, Source: sourceOf(key, layers), Msg: msg})
		case interface{ KeyPath() string }:
			key := e.KeyPath()
			msg := strings.TrimPrefix(err.Error(), key+": ")
			out = append(out, &Error{Key: key, Source: sourceOf(key, layers), Msg: msg})
		default:
			if inner := errors.Unwrap(err); inner != nil {
				walk(inner) // mapstructure's "decoding failed" wrapper
				return
			}
			out = append(out, &Error{Key: "(config)", Source: "config", Msg: err.Error()})
		}
	}
	walk(err)
	return out
}

// sourceOf names the highest-precedence source that set key or the list
// or value that contains it.
func sourceOf(key string, layers []*layer) string {
	path := key
	if i := strings.IndexByte(path, '['); i >= 0 {
		path = path[:i]
	}
	for i := len(layers) - 1; i >= 0; i-- {
		l := layers[i]
		for p := path; p != ""; p = parent(p) {
			if !l.k.Exists(p) {
				continue
			}
			if _, isMap := l.k.Get(p).(map[string]any); isMap && p != path {
				break // a section this layer only adds to
			}
			return l.describe(p)
		}
	}
	// Nothing sets key itself: a section only one source names (an
	// upstream an environment variable misspelt, given the upstream
	// defaults) is that source's.
	for p := parent(path); p != ""; p = parent(p) {
		var by *layer
		n := 0
		for _, l := range layers[1:] {
			if l.k.Exists(p) {
				by, n = l, n+1
			}
		}
		if n == 1 {
			return by.describeUnder(p)
		}
		if n > 1 {
			break
		}
	}
	return "defaults"
}

func parent(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}
