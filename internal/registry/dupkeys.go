package registry

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/l1gw/l1gw/internal/configkey"
)

// maxDepth bounds how deeply a body's objects and arrays nest: an admin
// body nests a few levels, and json.Decoder.Token, unlike Decode, has no
// bound of its own.
const maxDepth = 32

// duplicateKey finds the first name an object of the JSON value b holds
// twice, in any case: encoding/json takes the last of two, and matches a
// field's name in any case ("plan" and "PLAN" fill one field), so either
// is ambiguous. It returns the error naming the name's path, or one for a
// value nested deeper than maxDepth; nil otherwise (for an invalid value
// too: the decoder says what is wrong with it). Its work is linear in b:
// a level keeps its own name or index, and a path is built only for an
// error.
func duplicateKey(b []byte) error {
	type level struct {
		object  bool
		names   map[string]bool // objects: the names read, folded
		name    string          // objects: the last name, its value next
		wantKey bool
		index   int // arrays: the index of the element being read
	}
	var stack []level
	// path is the path of the value being read, at every level: an
	// object's at its last name, an array's at its element; with name,
	// that name's in the innermost object instead.
	path := func(name string) string {
		p := ""
		for i, l := range stack {
			switch {
			case !l.object:
				p += "[" + strconv.Itoa(l.index-1) + "]"
			case i < len(stack)-1 || name == "":
				p = join(p, l.name)
			}
		}
		if name != "" {
			p = join(p, name)
		}
		return p
	}
	// value marks a value read at the innermost level: an object's wants
	// its next name, an array's counts it.
	value := func() {
		if len(stack) == 0 {
			return
		}
		if l := &stack[len(stack)-1]; l.object {
			l.wantKey = true
		} else {
			l.index++
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
			if l := &stack[len(stack)-1]; l.object && l.wantKey {
				if name, ok := tok.(string); ok {
					folded := strings.ToLower(strings.ToUpper(name)) // as EqualFold: 'ſ' is 's', 'K' (Kelvin) 'k'
					if l.names[folded] {
						return configkey.Errorf(path(name), "given twice in one object (names are matched in any case)")
					}
					l.names[folded] = true
					l.name, l.wantKey = name, false
					continue
				}
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) > 0 && !stack[len(stack)-1].object {
				stack[len(stack)-1].index++ // this element's, for its path
			}
			if len(stack) == maxDepth {
				return configkey.Errorf(path(""), "nested deeper than %d levels", maxDepth)
			}
			if tok == json.Delim('{') {
				stack = append(stack, level{object: true, names: map[string]bool{}, wantKey: true})
			} else {
				stack = append(stack, level{})
			}
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].wantKey = true
			}
		default:
			value()
		}
	}
}
