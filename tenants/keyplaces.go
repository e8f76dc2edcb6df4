package tenants

import (
	"bytes"
	"encoding/base64"
)

// KeyBufLen is the most bytes a key read from a query parameter (once
// percent-decoded) or from Basic credentials (once base64-decoded, user-id
// and password together) may take: the scratch the request path decodes
// into lives on its stack.
const KeyBufLen = 1024

var basic = []byte("Basic")

// BasicKey returns the API key of an "Authorization: Basic" value
// (RFC 7617): the password, or the user-id when the password is empty,
// so that both `curl -u KEY:` and `curl -u api:KEY` send KEY. The
// credentials are decoded into dst, and the key is a part of dst; so is
// user, the user-id when the key is the password (nil otherwise), which
// an upstream following another convention (Stripe's: the user-id is the
// key) would read as the key.
//
// For a value of another scheme it returns nil, nil, true. It returns
// false for Basic credentials that are not base64 (padded or not), have
// no ':' or decode to more than len(dst) bytes.
func BasicKey(dst, authorization []byte) (key, user []byte, ok bool) {
	creds, isBasic := CutScheme(authorization, basic)
	if !isBasic {
		return nil, nil, true
	}
	enc := base64.RawStdEncoding
	if len(creds)%4 == 0 {
		enc = base64.StdEncoding // padding, if any, must be right
	}
	if enc.DecodedLen(len(creds)) > len(dst) {
		return nil, nil, false
	}
	n, err := enc.Decode(dst, creds)
	if err != nil {
		return nil, nil, false
	}
	user, pass, found := bytes.Cut(dst[:n], []byte{':'})
	if !found {
		return nil, nil, false
	}
	if len(pass) > 0 {
		return pass, user, true
	}
	return user, nil, true
}

// QueryKey finds the parameter name in a raw query string (no '?', still
// percent-encoded, as fasthttp.URI.QueryString returns it) and returns its
// value percent-decoded ('+' as a space) and how many times the parameter
// occurs. Names are compared decoded, so user%5Fkey is user_key; an
// invalid escape stays as it is, as fasthttp reads it. A value with no
// escape is a part of query; one with escapes is decoded into dst, and
// ok is false when it does not fit. With n > 1 the key is the first's.
func QueryKey(dst, query []byte, name string) (key []byte, n int, ok bool) {
	ok = true
	for len(query) > 0 {
		var seg []byte
		seg, query, _ = cutSegment(query)
		k, v, _ := bytes.Cut(seg, []byte{'='})
		if !nameIs(k, name) {
			continue
		}
		if n++; n == 1 {
			key, ok = unescape(dst, v)
		}
	}
	return key, n, ok
}

// StripQueryParam removes every occurrence of the parameter name (compared
// as QueryKey compares it) from a raw query string, in place, and returns
// what is left: the other parameters as they were sent, in their order.
func StripQueryParam(query []byte, name string) []byte {
	w, rest, kept := 0, query, false
	for more := true; more; {
		var seg []byte
		seg, rest, more = cutSegment(rest)
		k, _, _ := bytes.Cut(seg, []byte{'='})
		if nameIs(k, name) {
			continue
		}
		if kept {
			query[w] = '&'
			w++
		}
		w += copy(query[w:], seg)
		kept = true
	}
	return query[:w]
}

// cutSegment splits the first name=value pair off a raw query string;
// more says whether a '&' followed it (an empty pair may be last).
func cutSegment(q []byte) (seg, rest []byte, more bool) {
	if i := bytes.IndexByte(q, '&'); i >= 0 {
		return q[:i], q[i+1:], true
	}
	return q, nil, false
}

// nameIs reports whether the raw parameter name enc decodes to name.
func nameIs(enc []byte, name string) bool {
	j := 0
	for i := 0; i < len(enc); i++ {
		c, skip := decodeAt(enc, i)
		if j >= len(name) || c != name[j] {
			return false
		}
		i += skip
		j++
	}
	return j == len(name)
}

// unescape percent-decodes v into dst; v itself when it holds no escape.
func unescape(dst, v []byte) ([]byte, bool) {
	if bytes.IndexByte(v, '%') < 0 && bytes.IndexByte(v, '+') < 0 {
		return v, true
	}
	n := 0
	for i := 0; i < len(v); i++ {
		if n == len(dst) {
			return nil, false
		}
		c, skip := decodeAt(v, i)
		dst[n] = c
		n++
		i += skip
	}
	return dst[:n], true
}

// decodeAt decodes the byte at s[i] as fasthttp's query parser does: '+'
// is a space, a valid %XX escape its byte (skip 2 more), and a '%' with
// fewer than two bytes after it leaves those bytes as they are (a '+'
// too); anything else is itself.
func decodeAt(s []byte, i int) (c byte, skip int) {
	switch {
	case s[i] == '+' && !tailAfterPercent(s, i):
		return ' ', 0
	case s[i] == '%' && i+2 < len(s):
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi >= 0 && lo >= 0 {
			return byte(hi<<4 | lo), 2
		}
	}
	return s[i], 0
}

// tailAfterPercent: s[i] ends s right after a '%', too soon for an
// escape; fasthttp leaves such a tail as it was sent.
func tailAfterPercent(s []byte, i int) bool {
	return i == len(s)-1 && i > 0 && s[i-1] == '%'
}

// unhex is a hex digit's value, -1 for any other byte.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
