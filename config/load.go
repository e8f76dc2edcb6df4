package config

import (
	_ "embed"
	"errors"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	yaml3 "go.yaml.in/yaml/v3"
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

// describeUnder names what in l set a key under section p: the finer
// origin of the first such key (the variable, the flag), or the layer.
func (l *layer) describeUnder(p string) string {
	first := ""
	for k := range l.origin {
		if strings.HasPrefix(k, p+".") && (first == "" || k < first) {
			first = k
		}
	}
	if first == "" {
		return l.name
	}
	return l.origin[first]
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
	for i := range c.Routes {
		c.Routes[i].LeaseTTL = c.Tenants.LeaseTTL // one lease life for plans and routes
	}
	// As admin_token_file's: a Secret mapped to an environment variable
	// often ends in a newline, which no Authorization header carries.
	c.Server.AdminToken = strings.TrimSpace(c.Server.AdminToken)
	// Validate even what decoded only in part, so one run lists every
	// problem; a key that failed to decode is not reported twice.
	for _, e := range append(attribute(errors.Join(c.validate()...), layers), unused(&c, layers)...) {
		if !errs.covers(e.Key) && !errs.brokeReference(e) {
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
		if errs, ok := err.(Errors); ok {
			return nil, errs
		}
		if err != nil {
			return nil, Errors{{Key: "(file)", Source: in.File, Msg: err.Error()}}
		}
		layers = append(layers, f)
	}
	envLayer, err := readEnv(in.Environ, layers)
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
	l := &layer{name: name, k: k}
	errs := nulls(k.Raw(), "", name)
	var doc yaml3.Node
	if err := yaml3.Unmarshal(b, &doc); err == nil {
		errs = append(errs, plainIntegers(&doc, "", name)...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return l, nil
}

// plainIntegers lists the keys under path in n whose integer YAML reads
// in another base, or with digits left out: 010 (8), 0x10, 0o10, 0b10,
// 1_000. An integer in the config is written in decimal.
func plainIntegers(n *yaml3.Node, path, source string) Errors {
	var out Errors
	switch n.Kind {
	case yaml3.DocumentNode:
		for _, c := range n.Content {
			out = append(out, plainIntegers(c, path, source)...)
		}
	case yaml3.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if path != "" {
				key = path + "." + key
			}
			out = append(out, plainIntegers(n.Content[i+1], key, source)...)
		}
	case yaml3.SequenceNode:
		for i, c := range n.Content {
			out = append(out, plainIntegers(c, path+"["+strconv.Itoa(i)+"]", source)...)
		}
	case yaml3.ScalarNode:
		switch {
		case n.ShortTag() == "!!int" && !decimal.MatchString(n.Value):
			out = append(out, &Error{Key: path, Source: source,
				Msg: "got " + n.Value + "; write an integer in decimal, without leading zeros or _ (YAML reads 010 as 8), or quote it if it is a string"})
		case n.ShortTag() == "!!float" && leadingZero.MatchString(n.Value):
			// 08 and 0800123 are no octal, so YAML reads them as numbers
			// without the zero: a key "0800123" became "800123".
			out = append(out, &Error{Key: path, Source: source,
				Msg: "got " + n.Value + "; YAML reads it as a number without its leading zero: quote it if it is a string"})
		}
	}
	return out
}

// decimal is an integer as the config writes one; leadingZero a number
// that starts with a zero and another digit.
var (
	decimal     = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)$`)
	leadingZero = regexp.MustCompile(`^[-+]?0[0-9]`)
)

// nulls lists the keys under path in data that have no value (YAML's
// "key:" with nothing after it, or ~): merged over the defaults, a null
// takes the default's place and decodes as the zero value, so
// "hide_key:" read as false, and an empty "health:" section turned the
// health checks off.
func nulls(data any, path, source string) Errors {
	var out Errors
	switch v := data.(type) {
	case nil:
		out = append(out, &Error{Key: path, Source: source, Msg: "no value (empty or null): write one, or leave the key out for its default"})
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			key := k
			if path != "" {
				key = path + "." + k
			}
			out = append(out, nulls(v[k], key, source)...)
		}
	case []any:
		for i, e := range v {
			out = append(out, nulls(e, path+"["+strconv.Itoa(i)+"]", source)...)
		}
	}
	return out
}

// serviceLink matches, past EnvPrefix, the variables Kubernetes sets in a
// pod for every Service of its namespace (enableServiceLinks, on by
// default): a Service named l1gw gives L1GW_SERVICE_HOST,
// L1GW_PORT_8080_TCP_ADDR and more, l1gw-admin L1GW_ADMIN_SERVICE_PORT.
// No config key looks like one, so they are not read as keys: taken for
// unknown keys, they stopped the gateway from starting in a namespace
// with its own Service.
var serviceLink = regexp.MustCompile(`^([A-Z0-9_]*[A-Z0-9]_)?(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$`)

// isServiceLink reports whether the variable name is a Kubernetes service
// link under EnvPrefix.
func isServiceLink(name string) bool {
	rest, ok := strings.CutPrefix(name, EnvPrefix)
	return ok && !strings.Contains(rest, "__") && serviceLink.MatchString(rest)
}

// envKey is the key path a variable sets: L1GW_SERVER__READ_TIMEOUT is
// server.read_timeout.
func envKey(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__", ".")
}

// alignCase spells each level of key, a path read in lower case from an
// environment variable, as the earlier layers spell it, where that
// differs only in case and no other name there matches it: a plan or an
// upstream named API is set by L1GW_UPSTREAMS__API__TIMEOUT, which would
// otherwise name upstreams.api. A level no earlier layer has, or more
// than one matches without case, stays as it is.
func alignCase(key string, roots []map[string]any) string {
	trees := append([]map[string]any(nil), roots...)
	parts := strings.Split(key, ".")
	for i, part := range parts {
		var match string
		ambiguous := false
		exact := false
		for _, t := range trees {
			for name := range t {
				switch {
				case name == part:
					exact = true
				case strings.EqualFold(name, part):
					if match != "" && match != name {
						ambiguous = true
					}
					match = name
				}
			}
		}
		if !exact && match != "" && !ambiguous {
			parts[i] = match
		}
		next := trees[:0]
		for _, t := range trees {
			if sub, ok := t[parts[i]].(map[string]any); ok {
				next = append(next, sub)
			}
		}
		if trees = next; len(trees) == 0 {
			break
		}
	}
	return strings.Join(parts, ".")
}

func readEnv(environ []string, earlier []*layer) (*layer, error) {
	l := &layer{name: "environment", k: koanf.New("."), origin: map[string]string{}}
	roots := make([]map[string]any, 0, len(earlier))
	for _, e := range earlier {
		roots = append(roots, e.k.Raw())
	}
	var errs Errors
	kept := environ[:0:0]
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || isServiceLink(name) {
			continue
		}
		kept = append(kept, kv)
		if bad := badKeyPath(envKey(name)); bad != "" {
			errs = append(errs, &Error{Key: name, Source: "env " + name, Msg: bad + ": want L1GW_ and the key path in upper case, __ between levels"})
		}
	}
	err := l.k.Load(env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return kept },
		TransformFunc: func(name, v string) (string, any) {
			key := alignCase(envKey(name), roots)
			l.origin[key] = "env " + name
			return key, v
		},
	}), nil)
	if err != nil {
		return nil, Errors{{Key: "(environment)", Source: "environment", Msg: err.Error()}}
	}
	errs = append(errs, valueAndSection(l)...)
	if len(errs) > 0 {
		return nil, errs
	}
	return l, nil
}

// badKeyPath says what is wrong with a key path from the environment or
// --set: an empty level (L1GW_, L1GW___X, --set a..b=1); "" if nothing.
func badKeyPath(key string) string {
	if key == "" {
		return "no key path"
	}
	for _, part := range strings.Split(key, ".") {
		if part == "" {
			return "an empty level in the key path"
		}
	}
	return ""
}

// valueAndSection reports the keys of l that are set both as a value and
// as a section (L1GW_SERVER=x beside L1GW_SERVER__LISTEN=:1): one hides
// the other.
func valueAndSection(l *layer) Errors {
	var out Errors
	for key, origin := range l.origin {
		for other, o := range l.origin {
			if strings.HasPrefix(other, key+".") {
				out = append(out, &Error{Key: key, Source: origin, Msg: "set as a value, and as a section by " + o + ": one would hide the other"})
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// secretPath says whether a key path may hold a secret whose value an
// error must not quote: a password, a token, a tenant's keys or key
// hashes (a plain key may be pasted there), an upstream's targets (which
// may carry user:password@); not a path to a file holding one.
func secretPath(key string) bool {
	k := strings.ToLower(key)
	if strings.HasSuffix(k, "_file") {
		return false // a path to the secret, not the secret
	}
	for _, s := range []string{"password", "token", "keys", "key_hash", "targets"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
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
		origin := "--set " + s
		if secretPath(key) {
			origin = "--set " + key // the value is not shown, as an environment variable's is not
		}
		if bad := badKeyPath(key); bad != "" {
			errs = append(errs, &Error{Key: key, Source: origin, Msg: bad + ": want --set key.path=value"})
			continue
		}
		m[key] = v
		l.origin[key] = origin
	}
	errs = append(errs, valueAndSection(l)...)
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
		// Not MergeAt: it splits its path at every dot, and an upstream
		// name may have dots (api.v1).
		at := koanf.New(".")
		if err := at.Load(confmap.Provider(map[string]any{"upstreams": map[string]any{n: d.Raw()}}, ""), nil); err != nil {
			return nil, err
		}
		if err := out.Merge(at); err != nil {
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
