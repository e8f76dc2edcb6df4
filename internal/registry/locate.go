package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/l1gw/l1gw/internal/configkey"
)

// locate finds the field of raw, a JSON value for type t at path, that
// decoding into t refuses, and why: an unknown field, a value of the
// wrong type, a value its type's own decoder refuses (a rule's window).
// ok is false when it finds none, and the caller keeps the decoder's
// error. It walks raw as far as the body goes, no deeper than t.
func locate(raw json.RawMessage, t reflect.Type, path string) (err *configkey.Error, ok bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	custom := reflect.PointerTo(t).Implements(unmarshalerType)
	switch {
	case t == timeType:
		if json.Unmarshal(raw, new(time.Time)) != nil {
			return configkey.Errorf(path, "got %s; want an RFC 3339 time such as 2030-01-01T00:00:00Z", raw), true
		}
		return nil, false
	case custom && t.Kind() == reflect.Struct && hasExported(t):
		if decodeErr := json.Unmarshal(raw, reflect.New(t).Interface()); decodeErr == nil {
			return nil, false
		} else if fields, isObject := object(raw); isObject {
			// Its own decoder, one field at a time: the first it refuses.
			for _, k := range sortedKeys(fields) {
				one, _ := json.Marshal(map[string]json.RawMessage{k: fields[k]})
				if e := json.Unmarshal(one, reflect.New(t).Interface()); e != nil {
					return configkey.Errorf(join(path, k), "%s", message(e, k)), true
				}
			}
			return configkey.Errorf(path, "%s", message(decodeErr, "")), true
		}
	case custom:
	case t.Kind() == reflect.Struct:
		fields, isObject := object(raw)
		if !isObject {
			break
		}
		for _, k := range sortedKeys(fields) {
			f, found := fieldByJSONName(t, k)
			if !found {
				return configkey.Errorf(join(path, k), "unknown field"), true
			}
			if e, ok := locate(fields[k], f.Type, join(path, k)); ok {
				return e, true
			}
		}
		return nil, false
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			break
		}
		for i, item := range items {
			if e, ok := locate(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); ok {
				return e, true
			}
		}
		return nil, false
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		fields, isObject := object(raw)
		if !isObject {
			break
		}
		for _, k := range sortedKeys(fields) {
			if e, ok := locate(fields[k], t.Elem(), join(path, k)); ok {
				return e, true
			}
		}
		return nil, false
	}
	if decodeErr := json.Unmarshal(raw, reflect.New(t).Interface()); decodeErr != nil && path != "" {
		return configkey.Errorf(path, "%s", message(decodeErr, "")), true
	}
	return nil, false
}

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	timeType        = reflect.TypeFor[time.Time]()
)

// hasExported: t has a field a JSON object names, so a field of the
// object can be at fault rather than the whole.
func hasExported(t reflect.Type) bool {
	for i := range t.NumField() {
		if t.Field(i).IsExported() {
			return true
		}
	}
	return false
}

// object is raw as a JSON object's fields, if it is one.
func object(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || fields == nil {
		return nil, false
	}
	return fields, true
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// fieldByJSONName is t's field that encoding/json decodes key into: by
// its JSON name, exactly or else in any case, through embedded structs.
func fieldByJSONName(t reflect.Type, key string) (reflect.StructField, bool) {
	var fold *reflect.StructField
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous && f.Type.Kind() == reflect.Struct {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f, true
		}
		if fold == nil && strings.EqualFold(name, key) {
			fold = &f
		}
	}
	if fold != nil {
		return *fold, true
	}
	return reflect.StructField{}, false
}

// message is what a decoding error says, without Go's type names; key, if
// set, is the field the error may name first ("window: …").
func message(err error, key string) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("got a JSON %s; want %s", te.Value, jsonKind(te.Type))
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if key != "" {
		msg = strings.TrimPrefix(msg, key+": ")
	}
	if strings.HasPrefix(msg, "unknown field ") {
		return "unknown field"
	}
	return msg
}

// jsonKind names what a Go type takes in JSON.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number >= 0"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
