package admin

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// configJSON is v (the effective config) in JSON as encoding/json writes
// it, but for every value of type time.Duration (not a named type of
// its own, nor a map key), written as its String ("10ms", "1m0s"), which
// the config file takes back, rather than as nanoseconds.
func configJSON(v any) ([]byte, error) {
	return (&durationEncoder{durations: true}).encode(nil, reflect.ValueOf(v))
}

var (
	durationType      = reflect.TypeFor[time.Duration]()
	jsonMarshaler     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// durationEncoder walks a value as encoding/json does. With durations
// false it writes what json.Marshal writes (the test's reference).
type durationEncoder struct {
	durations bool
	level     int         // pointers, maps and slices entered
	seen      map[any]int // those entered past cycleLevel
}

// cycleLevel is where encoding/json starts looking for cycles.
const cycleLevel = 1000

func (e *durationEncoder) encode(b []byte, v reflect.Value) ([]byte, error) {
	if !v.IsValid() {
		return append(b, "null"...), nil
	}
	t := v.Type()
	if e.durations && t == durationType {
		return strconv.AppendQuote(b, time.Duration(v.Int()).String()), nil
	}
	if implementsMarshaler(v) {
		return e.marshal(b, v)
	}
	if k := v.Kind(); k == reflect.Map && !keyable(t.Key()) {
		return nil, &json.UnsupportedTypeError{Type: t} // nil or empty too
	} else if (k == reflect.Pointer || k == reflect.Map || k == reflect.Slice) && !v.IsNil() {
		key, err := e.enter(v)
		if err != nil {
			return nil, err
		}
		defer e.leave(key)
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		return e.encode(b, v.Elem())
	case reflect.Struct:
		return e.object(b, v)
	case reflect.Map:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		return e.mapping(b, v)
	case reflect.Slice:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		if t.Elem().Kind() == reflect.Uint8 { // base64, as encoding/json
			return e.marshal(b, v)
		}
		return e.array(b, v)
	case reflect.Array:
		return e.array(b, v)
	}
	return e.marshal(b, v)
}

// enter counts a non-nil pointer, map or slice entered and, past
// cycleLevel, refuses one already being written, as encoding/json does
// (a cycle would otherwise overflow the stack: a fatal error, not a
// panic). key is what leave takes back: nil below cycleLevel.
func (e *durationEncoder) enter(v reflect.Value) (key any, err error) {
	if e.level++; e.level <= cycleLevel {
		return nil, nil
	}
	key = v.Pointer()
	if v.Kind() == reflect.Slice {
		key = [2]uintptr{v.Pointer(), uintptr(v.Len())}
	}
	if e.seen == nil {
		e.seen = map[any]int{}
	}
	if e.seen[key] > 0 {
		e.level--
		return nil, &json.UnsupportedValueError{Value: v, Str: "encountered a cycle via " + v.Type().String()}
	}
	e.seen[key]++
	return key, nil
}

// leave undoes an enter.
func (e *durationEncoder) leave(key any) {
	e.level--
	if key != nil {
		e.seen[key]--
	}
}

// keyable: encoding/json writes maps with keys of type t.
func keyable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return t.Implements(textMarshalerType)
}

// array appends a slice's or an array's elements.
func (e *durationEncoder) array(b []byte, v reflect.Value) ([]byte, error) {
	b = append(b, '[')
	for i := range v.Len() {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = e.encode(b, v.Index(i)); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

// marshal appends what json.Marshal makes of v.
func (e *durationEncoder) marshal(b []byte, v reflect.Value) ([]byte, error) {
	if !v.CanInterface() {
		return nil, fmt.Errorf("admin: %s: an unexported embedded marshaler is not shown", v.Type())
	}
	var x any
	switch t := v.Type(); {
	case t.Kind() == reflect.Interface && v.IsNil():
		return append(b, "null"...), nil
	case t.Kind() == reflect.Interface && t.Implements(jsonMarshaler):
		x = jsonOnly{v.Interface().(json.Marshaler)} // the interface's method, as encoding/json calls it
	case t.Kind() == reflect.Interface:
		x = textOnly{v.Interface().(encoding.TextMarshaler)}
	case v.CanAddr():
		x = v.Addr().Interface() // a method on the pointer, as encoding/json finds it
	default:
		x = v.Interface()
	}
	out, err := json.Marshal(x)
	return append(b, out...), err
}

// object appends a struct's fields as encoding/json does: by the rules of
// jsonFields, with a nil embedded pointer's fields left out.
func (e *durationEncoder) object(b []byte, v reflect.Value) ([]byte, error) {
	b = append(b, '{')
	first := true
fields:
	for _, f := range jsonFields(v.Type()) {
		fv := v
		for _, i := range f.index {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue fields
				}
				fv = fv.Elem()
			}
			fv = fv.Field(i)
		}
		if f.omitEmpty && empty(fv) || f.omitZero && zero(fv) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(append(b, f.key...), ':')
		var err error
		if f.quoted {
			b, err = e.quoted(b, fv)
		} else {
			b, err = e.encode(b, fv)
		}
		if err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// jsonOnly and textOnly have only the method of the interface they hold.
type (
	jsonOnly struct{ json.Marshaler }
	textOnly struct{ encoding.TextMarshaler }
)

// quoted appends a field tagged ",string": a bool, number or string
// written as a JSON string, a nil pointer as null, a marshaler as itself.
func (e *durationEncoder) quoted(b []byte, v reflect.Value) ([]byte, error) {
	for v.Kind() == reflect.Pointer && !implementsMarshaler(v) {
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		v = v.Elem()
	}
	if implementsMarshaler(v) || e.durations && v.Type() == durationType {
		return e.encode(b, v)
	}
	inner, err := e.encode(nil, v)
	if err != nil {
		return nil, err
	}
	q, err := json.Marshal(string(inner))
	return append(b, q...), err
}

// implementsMarshaler: encoding/json writes v by its MarshalJSON or
// MarshalText (on the pointer, if v is addressable).
func implementsMarshaler(v reflect.Value) bool {
	t := v.Type()
	return t.Implements(jsonMarshaler) || t.Implements(textMarshalerType) ||
		v.CanAddr() && (reflect.PointerTo(t).Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(textMarshalerType))
}

// jsonField is one field encoding/json writes of a struct.
type jsonField struct {
	name      string
	key       []byte // name as a JSON string, escaped as encoding/json escapes it
	index     []int  // through embedded structs
	tagged    bool   // named by its tag
	omitEmpty bool
	omitZero  bool
	quoted    bool // ",string" on a bool, number or string
}

// jsonFields are the fields encoding/json writes of struct type t, in its
// order, by its rules (its typeFields): embedded structs' fields promoted,
// breadth first, each struct type once; of fields with one name, the
// shallowest wins, a tagged one over untagged ones at its depth, and two
// alike at the shallowest depth are both left out.
func jsonFields(t reflect.Type) []jsonField {
	type embedded struct {
		typ   reflect.Type
		index []int
	}
	var fields []jsonField
	visited := map[reflect.Type]bool{}
	next := []embedded{{typ: t}}
	var count, nextCount map[reflect.Type]int // embeddings of a type found at a depth
	for len(next) > 0 {
		current := next
		next = nil
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, c := range current {
			if visited[c.typ] {
				continue
			}
			visited[c.typ] = true
			for i := range c.typ.NumField() {
				sf := c.typ.Field(i)
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if !validTagName(name) {
					name = ""
				}
				index := append(slices.Clone(c.index), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
					if nextCount[ft]++; nextCount[ft] == 1 {
						next = append(next, embedded{ft, index})
					}
					continue
				}
				o := strings.Split(opts, ",")
				f := jsonField{name: name, index: index, tagged: name != "",
					omitEmpty: slices.Contains(o, "omitempty"), omitZero: slices.Contains(o, "omitzero")}
				if slices.Contains(o, "string") {
					switch ft.Kind() {
					case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
						reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
						reflect.Float32, reflect.Float64, reflect.String:
						f.quoted = true
					}
				}
				if f.name == "" {
					f.name = sf.Name
				}
				fields = append(fields, f)
				if count[c.typ] > 1 { // reached twice at this depth: a conflict
					fields = append(fields, f)
				}
			}
		}
	}
	slices.SortStableFunc(fields, func(a, b jsonField) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := len(a.index) - len(b.index); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return slices.Compare(a.index, b.index)
	})
	out := fields[:0]
	for i := 0; i < len(fields); {
		j := i + 1
		for j < len(fields) && fields[j].name == fields[i].name {
			j++
		}
		if j == i+1 || len(fields[i].index) < len(fields[i+1].index) || fields[i].tagged != fields[i+1].tagged {
			out = append(out, fields[i])
		}
		i = j
	}
	slices.SortFunc(out, func(a, b jsonField) int { return slices.Compare(a.index, b.index) })
	for i := range out {
		out[i].key, _ = json.Marshal(out[i].name) // a string: cannot fail
	}
	return out
}

// validTagName is encoding/json's test of a tag's name.
func validTagName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c) && !unicode.IsLetter(c) && !unicode.IsDigit(c) {
			return false
		}
	}
	return true
}

// mapping appends a map with its keys sorted, as encoding/json does.
func (e *durationEncoder) mapping(b []byte, v reflect.Value) ([]byte, error) {
	keys := v.MapKeys()
	names := make([]string, len(keys))
	for i, k := range keys {
		var err error
		if names[i], err = keyName(k); err != nil {
			return nil, err
		}
	}
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int { return strings.Compare(names[i], names[j]) })
	b = append(b, '{')
	for n, i := range order {
		if n > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(names[i])
		b = append(append(b, kb...), ':')
		var err error
		if b, err = e.encode(b, v.MapIndex(keys[i])); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// keyName is a map key as encoding/json writes it: a string as itself,
// else by MarshalText, else an integer in decimal.
func keyName(k reflect.Value) (string, error) {
	if k.Kind() == reflect.String {
		return k.String(), nil
	}
	if tm, ok := k.Interface().(encoding.TextMarshaler); ok {
		if k.Kind() == reflect.Pointer && k.IsNil() {
			return "", nil
		}
		b, err := tm.MarshalText()
		if err != nil {
			return "", fmt.Errorf("json: error calling MarshalText for type %s: %w", k.Type(), err)
		}
		return string(b), nil
	}
	switch k.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10), nil
	}
	// A nil key of a marshaler interface type: encoding/json panics.
	return "", &json.UnsupportedValueError{Value: k, Str: "a nil map key"}
}

// empty is encoding/json's omitempty test.
func empty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// zero is encoding/json's omitzero test: by the IsZero method of the
// value's static type (or its pointer's, or the pointed-to value's), which
// a nil pointer, interface or pointer in an interface never reaches; else
// the zero value.
func zero(v reflect.Value) bool {
	t := v.Type()
	switch {
	case !v.CanInterface():
		// An unexported embedded struct: encoding/json panics on asking
		// its IsZero; the walk takes the zero value instead.
	case t.Kind() == reflect.Interface && t.Implements(isZeroerType):
		return v.IsNil() || v.Elem().Kind() == reflect.Pointer && v.Elem().IsNil() ||
			v.Interface().(isZeroer).IsZero()
	case t.Kind() == reflect.Pointer && t.Implements(isZeroerType):
		return v.IsNil() || v.Interface().(isZeroer).IsZero()
	case t.Implements(isZeroerType):
		return v.Interface().(isZeroer).IsZero()
	case reflect.PointerTo(t).Implements(isZeroerType):
		if !v.CanAddr() {
			c := reflect.New(t).Elem()
			c.Set(v)
			v = c
		}
		return v.Addr().Interface().(isZeroer).IsZero()
	}
	return v.IsZero()
}

type isZeroer interface{ IsZero() bool }

var isZeroerType = reflect.TypeFor[isZeroer]()

// indented is b (JSON) indented by two spaces, as /v1/config shows it.
func indented(b []byte) ([]byte, error) {
	var out bytes.Buffer
	err := json.Indent(&out, b, "", "  ")
	return out.Bytes(), err
}
