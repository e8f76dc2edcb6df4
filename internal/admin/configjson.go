package admin

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// configJSON is v (the effective config) in JSON as encoding/json writes
// it, but for every time.Duration, written as its String ("10ms", "1m0s"),
// which the config file takes back, rather than as nanoseconds.
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
type durationEncoder struct{ durations bool }

func (e *durationEncoder) encode(b []byte, v reflect.Value) ([]byte, error) {
	if !v.IsValid() {
		return append(b, "null"...), nil
	}
	t := v.Type()
	if e.durations && t == durationType {
		return strconv.AppendQuote(b, time.Duration(v.Int()).String()), nil
	}
	if t.Implements(jsonMarshaler) || t.Implements(textMarshalerType) ||
		v.CanAddr() && (reflect.PointerTo(t).Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(textMarshalerType)) {
		return e.marshal(b, v)
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
		fallthrough
	case reflect.Array:
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
	return e.marshal(b, v)
}

// marshal appends what json.Marshal makes of v.
func (e *durationEncoder) marshal(b []byte, v reflect.Value) ([]byte, error) {
	if v.CanAddr() {
		v = v.Addr() // a method on the pointer, as encoding/json finds it
	}
	out, err := json.Marshal(v.Interface())
	return append(b, out...), err
}

// object appends a struct's fields by their json names, in order, with
// embedded structs' fields in their place, as encoding/json does (the
// config has no two fields of one name).
func (e *durationEncoder) object(b []byte, v reflect.Value) ([]byte, error) {
	b = append(b, '{')
	first := true
	var err error
	if b, err = e.fields(b, v, &first); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

func (e *durationEncoder) fields(b []byte, v reflect.Value, first *bool) ([]byte, error) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
			}
			if et.Kind() == reflect.Struct {
				var err error
				if b, err = e.fields(b, fv, first); err != nil {
					return nil, err
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if o := strings.Split(opts, ","); slices.Contains(o, "omitempty") && empty(fv) || slices.Contains(o, "omitzero") && zero(fv) {
			continue
		}
		if !*first {
			b = append(b, ',')
		}
		*first = false
		b = strconv.AppendQuote(b, name)
		b = append(b, ':')
		var err error
		if b, err = e.encode(b, fv); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// mapping appends a map with its keys sorted, as encoding/json does.
func (e *durationEncoder) mapping(b []byte, v reflect.Value) ([]byte, error) {
	keys := v.MapKeys()
	names := make([]string, len(keys))
	for i, k := range keys {
		if k.Kind() != reflect.String {
			return e.marshal(b, v) // no such map in the config
		}
		names[i] = k.String()
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

// zero is encoding/json's omitzero test: the value's IsZero method if it
// has one, else the zero value.
func zero(v reflect.Value) bool {
	if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
		return true
	}
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
		return z.IsZero()
	}
	return v.IsZero()
}

// indented is b (JSON) indented by two spaces, as /v1/config shows it.
func indented(b []byte) ([]byte, error) {
	var out bytes.Buffer
	err := json.Indent(&out, b, "", "  ")
	return out.Bytes(), err
}
