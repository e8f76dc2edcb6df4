package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
)

var (
	//go:embed defaults.yaml
	defaultsYAML []byte
	//go:embed upstream_defaults.yaml
	upstreamDefaultsYAML []byte
	//go:embed demo.yaml
	demoYAML []byte
)

// EnvPrefix starts every environment variable l1gw reads.
const EnvPrefix = "L1GW_"

// DemoSource names the embedded demo config in errors and logs.
const DemoSource = "embedded demo config"

// Input is what Load layers, lowest precedence first after the defaults.
type Input struct {
	// File is the YAML file (--config); "" loads the embedded demo.
	File string
	// Environ is the environment (os.Environ()); only L1GW_* is read.
	Environ []string
	// Sets are --set key.path=value flags, in order; the last one wins.
	Sets []string
}

// layer is one source of keys, kept apart so errors can name it.
type layer struct {
	name   string
	k      *koanf.Koanf
	origin map[string]string // key → finer origin (the env var, the flag)
}

func (l *layer) describe(key string) string {
	if o, ok := l.origin[key]; ok {
		return o
	}
	return l.name
}

// Load reads, layers, decodes and validates the configuration. The error,
// if any, is an Errors listing every problem found.
func Load(in Input) (*Config, error) {
	layers, err := readLayers(in)
	if err != nil {
		return nil, err
	}
	merged, err := merge(layers)
	if err != nil {
		return nil, err
	}
	var c Config
	errs := unknownKeys(merged.Raw(), reflect.TypeOf(c), "", layers)
	if err := decode(merged, &c); err != nil {
		errs = append(errs, attribute(err, layers)...)
	}
	// Validate even what decoded only in part, so one run lists every
	// problem; a key that failed to decode is not reported twice.
	for _, e := range append(attribute(errors.Join(c.validate()...), layers), unused(&c, layers)...) {
		if !errs.covers(e.Key) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Key < errs[j].Key })
		return nil, errs
	}
	return &c, nil
}

func readLayers(in Input) ([]*layer, error) {
	var layers []*layer
	defaults, err := yamlLayer("defaults", defaultsYAML)
	if err != nil {
		panic("BUG: embedded defaults.yaml: " + err.Error())
	}
	layers = append(layers, defaults)
	if in.File == "" {
		demo, err := yamlLayer(DemoSource, demoYAML)
		if err != nil {
			panic("BUG: embedded demo.yaml: " + err.Error())
		}
		layers = append(layers, demo)
	} else {
		b, err := os.ReadFile(in.File)
		if err != nil {
			return nil, Errors{{Key: "--config", Source: in.File, Msg: err.Error()}}
		}
		f, err := yamlLayer(in.File, b)
		if err != nil {
			return nil, Errors{{Key: "(file)", Source: in.File, Msg: err.Error()}}
		}
		layers = append(layers, f)
	}
	envLayer, err := readEnv(in.Environ)
	if err != nil {
		return nil, err
	}
	setLayer, err := readSets(in.Sets)
	if err != nil {
		return nil, err
	}
	return append(layers, envLayer, setLayer), nil
}

func yamlLayer(name string, b []byte) (*layer, error) {
	k := koanf.New(".")
	if err := k.Load(rawbytes.Provider(b), yaml.Parser()); err != nil {
		return nil, err
	}
	return &layer{name: name, k: k}, nil
}

func readEnv(environ []string) (*layer, error) {
	l := &layer{name: "environment", k: koanf.New("."), origin: map[string]string{}}
	err := l.k.Load(env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, v string) (string, any) {
			key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__", ".")
			l.origin[key] = "env " + name
			return key, v
		},
	}), nil)
	if err != nil {
		return nil, Errors{{Key: "(environment)", Source: "environment", Msg: err.Error()}}
	}
	return l, nil
}

func readSets(sets []string) (*layer, error) {
	l := &layer{name: "--set", k: koanf.New("."), origin: map[string]string{}}
	m := map[string]any{}
	var errs Errors
	for _, s := range sets {
		key, v, ok := strings.Cut(s, "=")
		if !ok || key == "" {
			errs = append(errs, &Error{Key: s, Source: "--set " + s, Msg: "want --set key.path=value"})
			continue
		}
		m[key] = v
		l.origin[key] = "--set " + s
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if err := l.k.Load(confmap.Provider(m, "."), nil); err != nil {
		return nil, Errors{{Key: "--set", Source: "--set", Msg: err.Error()}}
	}
	return l, nil
}

// merge layers the sources over the defaults, with the upstream defaults
// under every upstream that any source names.
func merge(layers []*layer) (*koanf.Koanf, error) {
	names := map[string]bool{}
	for _, l := range layers[1:] {
		for _, n := range l.k.MapKeys("upstreams") {
			names[n] = true
		}
	}
	out := koanf.New(".")
	if err := out.Merge(layers[0].k); err != nil {
		return nil, err
	}
	for n := range names {
		d := koanf.New(".")
		if err := d.Load(rawbytes.Provider(upstreamDefaultsYAML), yaml.Parser()); err != nil {
			panic("BUG: embedded upstream_defaults.yaml: " + err.Error())
		}
		if err := out.MergeAt(d, "upstreams."+n); err != nil {
			return nil, err
		}
	}
	for _, l := range layers[1:] {
		if err := out.Merge(l.k); err != nil {
			return nil, Errors{{Key: "(merge)", Source: l.name, Msg: err.Error()}}
		}
	}
	return out, nil
}

func decode(k *koanf.Koanf, c *Config) error {
	return k.UnmarshalWithConf("", c, koanf.UnmarshalConf{
		DecoderConfig: &mapstructure.DecoderConfig{
			TagName:          "koanf",
			WeaklyTypedInput: true, // env and --set values are strings
			// Unknown keys are found by unknownKeys: mapstructure stops
			// looking for them in a section with a bad value.
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				durationHook,
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
	return "defaults"
}

func parent(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

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
		if l, ok := data.([]any); ok {
			for i, v := range l {
				out = append(out, unknownKeys(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i), layers)...)
			}
		}
	}
	return out
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
	if c.Tenants.Source == "config" {
		report("tenants.refresh", "set, but it is not supported yet: it paces re-reading a non-config tenants.source")
	}
	if c.Redis.Mode == "memory" {
		for _, k := range redisKeys {
			report("redis."+k, "set, but redis.mode is memory: set redis.mode too")
		}
	}
	return out
}

// redisKeys are the redis section's keys that only a Redis mode reads.
var redisKeys = []string{"master_name", "local_replicas", "username", "password", "sentinel_username",
	"sentinel_password", "db", "tls", "dial_timeout", "pool_size", "read_timeout", "write_timeout",
	"pool_timeout", "max_retries", "min_idle_conns", "decision_conns"}
