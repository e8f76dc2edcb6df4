package registry

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/l1gw/l1gw/internal/configkey"
)

// duplicateKey finds the first name an object of the JSON value b holds
// twice, in any case: encoding/json takes the last of two, and matches a
// field's name in any case ("plan" and "PLAN" fill one field), so either
// is ambiguous. It returns the error naming the name's path, or nil (for
// an invalid value too: the decoder says what is wrong with it).
func duplicateKey(b []byte) error {
	type level struct {
		object  bool
		path    string
		names   map[string]bool // objects: the names read, folded
		name    string          // objects: the last name, its value next
		wantKey bool
		next    int // arrays: the index of the next element
	}
	var stack []*level
	// pathOfNext is the path of the value about to be read.
	pathOfNext := func() string {
		if len(stack) == 0 {
			return ""
		}
		l := stack[len(stack)-1]
		if l.object {
			return join(l.path, l.name)
		}
		l.next++
		return l.path + "[" + strconv.Itoa(l.next-1) + "]"
	}
	// valueRead marks the value of the innermost object read.
	valueRead := func() {
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	for {
		tok, err := d.Token()
		if err != nil {
			return nil
		}
		if len(stack) > 0 {
			if l := stack[len(stack)-1]; l.object && l.wantKey {
				if name, ok := tok.(string); ok {
					folded := strings.ToLower(strings.ToUpper(name)) // as EqualFold: 'ſ' is 's', 'K' (Kelvin) 'k'
					if l.names[folded] {
						return configkey.Errorf(join(l.path, name), "given twice in one object (names are matched in any case)")
					}
					l.names[folded] = true
					l.name, l.wantKey = name, false
					continue
				}
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &level{object: true, path: pathOfNext(), names: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &level{path: pathOfNext()})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueRead()
		default:
			pathOfNext()
			valueRead()
		}
	}
}
