package gateway

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// keyPlaces are where a request carried its API key, to hide it there
// before forwarding (tenants.hide_key).
type keyPlaces uint8

// Places a key is hidden from.
const (
	// keyInAuth: Authorization holds the key (Bearer, or Basic with
	// tenants.key_basic_auth).
	keyInAuth keyPlaces = 1 << iota
	// keyInQuery: the query has the tenants.key_query parameter.
	keyInQuery
)

// keyScratch is where a key that needs decoding (percent-encoded in the
// query, base64 in Basic credentials) is decoded: in the request's
// admission.
type keyScratch [2 * tenants.KeyBufLen]byte

// identity is what a request says about who is calling.
type identity struct {
	key    []byte
	places keyPlaces
}

// identify finds the request's API key: in the key header, in the
// tenants.key_query parameter, in Authorization (Bearer, or Basic with
// tenants.key_basic_auth). Every place that holds a key must hold the
// same one: two different keys, or the parameter twice, are ambiguous
// (400). Beside a key found elsewhere, an Authorization value that is not
// that key is the upstream's credential, unless it is any tenant's key,
// an expired one too (400), as is a Basic user-id that is a tenant's key
// beside another password. A key, key parameter or Authorization with a
// byte outside ASCII is a 400. Malformed Basic credentials are a 401. ok
// is false with the problem to answer; the key header sent twice is
// checked before.
func (g *Gateway) identify(ctx *fasthttp.RequestCtx, snap *tenants.Snapshot, buf *keyScratch) (id identity, p problem, ok bool) {
	id.key = ctx.Request.Header.Peek(g.keyHeader)
	if !isASCII(id.key) {
		// "bob-key\xa0": unknown here (anonymous, with unknown: anonymous),
		// bob's key to an upstream that strips it as Python does.
		return id, problemKeyNotASCII, false
	}
	if g.keyQuery != "" {
		q, n, fits := tenants.QueryKey(buf[:tenants.KeyBufLen], ctx.URI().QueryString(), g.keyQuery)
		switch {
		case n > 1:
			return id, problemKeyQueryTwice, false
		case !fits:
			return id, problemKeyQueryLong, false
		case n == 1:
			id.places |= keyInQuery
		}
		if !isASCII(q) {
			return id, problemKeyNotASCII, false
		}
		if len(q) > 0 {
			if len(id.key) > 0 && !bytes.Equal(id.key, q) {
				return id, problemKeyConflict, false
			}
			id.key = q
		}
	}
	// The field's value without its whitespace (RFC 9110 5.5): fasthttp
	// trims one space only, and an upstream that trims it all must not
	// find a key where the gateway saw another scheme.
	authValue := bytes.Trim(ctx.Request.Header.PeekBytes(hdrAuthorization), " \t")
	if !isASCII(authValue) {
		// Python's str.split() and JavaScript's /\s/ split at NEL and NBSP:
		// "Bearer\xa0<key>" is a key there, and another scheme here.
		return id, problemAuthNotASCII, false
	}
	auth, user, p, ok := g.authKey(authValue, buf[tenants.KeyBufLen:])
	switch {
	case !ok:
		return id, p, false
	case len(user) > 0 && !bytes.Equal(user, auth) && snap.Known(user):
		// Basic with a tenant's key for user-id and another password: the
		// password is the key here, the user-id is at an upstream that
		// takes the key from there (Stripe's convention).
		return id, problemKeyConflict, false
	case len(auth) == 0 && keyUnderOtherScheme(snap, authValue):
		return id, problemKeyOtherScheme, false
	case len(auth) == 0:
	case len(id.key) == 0:
		id.key = auth
		id.places |= keyInAuth
	case bytes.Equal(auth, id.key):
		id.places |= keyInAuth
	case snap.Known(auth):
		return id, problemKeyConflict, false
	}
	if len(auth) > 0 && keyForAFramework(snap, authValue, auth) {
		// "Bearer KEY,x": the gateway reads "KEY,x" (no key, and nothing
		// hide_key would hide), Laravel and Rails read KEY.
		return id, problemKeyParsedElsewhere, false
	}
	return id, p, true
}

// keyForAFramework says whether an Authorization value holds a tenant's
// key, other than key (what the gateway read there), where a web
// framework's own parser reads one: what
// follows its last "Bearer " up to a ',' (Laravel's bearerToken), or, after
// a leading Token or Bearer scheme, its first parameter split on ',', ';'
// and tab, without "token=" and the quotes around it (Rails'
// token_and_options). At most three lookups, and none for a value those
// parsers read as key itself.
func keyForAFramework(snap *tenants.Snapshot, v, key []byte) bool {
	other := func(k []byte) bool {
		return len(k) > 0 && len(k) <= tenants.KeyBufLen && !bytes.Equal(k, key) && snap.Known(k)
	}
	if i := lastIndexFold(v, bearerSpace); i >= 0 {
		k := v[i+len(bearerSpace):]
		if j := bytes.IndexByte(k, ','); j >= 0 {
			k = k[:j]
		}
		if other(k) || other(bytes.Trim(k, " \t")) {
			return true
		}
	}
	rest, ok := tenants.CutScheme(v, bearer)
	if !ok {
		rest, ok = tenants.CutScheme(v, tokenScheme)
	}
	if !ok {
		return false
	}
	var first []byte
	for p := range bytes.FieldsFuncSeq(rest, func(r rune) bool { return r == ',' || r == ';' || r == '\t' }) {
		if first = bytes.Trim(p, " "); len(first) > 0 {
			break
		}
	}
	if len(first) >= len(tokenParam) && bytes.Equal(first[:len(tokenParam)], tokenParam) {
		first = first[len(tokenParam):]
	}
	first = bytes.TrimPrefix(first, quote)
	first = bytes.TrimSuffix(first, quote)
	return other(first)
}

var (
	bearer      = []byte("Bearer")
	bearerSpace = []byte("bearer ")
	tokenScheme = []byte("Token")
	tokenParam  = []byte("token=")
	quote       = []byte(`"`)
)

// lastIndexFold is the index of the last instance of lower, which is
// lower-case ASCII, in s in any case; -1 if none.
func lastIndexFold(s, lower []byte) int {
	for i := len(s) - len(lower); i >= 0; i-- {
		if bytes.EqualFold(s[i:i+len(lower)], lower) {
			return i
		}
	}
	return -1
}

// Method overrides: fields (and the query parameter _method) that Rails,
// Laravel, Symfony and Express's method-override read as the request's
// method.
var overrideFields = [][]byte{[]byte("X-HTTP-Method-Override"), []byte("X-HTTP-Method"), []byte("X-Method-Override")}

// overrideParam: a query parameter name PHP (Laravel, Symfony) reads as
// _method: it reads a name up to a NUL, drops its leading spaces, then
// turns '.' and ' ' into '_' (php_register_variable_ex), so " _method",
// " .method" and "_method%00x" are _method too. A name starting with ' '
// or '[' counts as well: PHP reads them otherwise, but refusing them
// costs a client nothing.
func overrideParam(k []byte) bool {
	if i := bytes.IndexByte(k, 0); i >= 0 {
		k = k[:i]
	}
	is := func(k []byte) bool {
		return len(k) == 7 && string(k[1:]) == "method" && (k[0] == '_' || k[0] == '.' || k[0] == ' ' || k[0] == '[')
	}
	return is(k) || is(bytes.TrimLeft(k, " "))
}

// overriddenPast reports whether the request names, in a method override,
// a method that t's routes give other rules on its path than the
// request's own method: an upstream that honours the override runs a
// request the limits did not count as such (POST with
// X-HTTP-Method-Override: DELETE past a DELETE route's limit). Both ways
// are refused, since an upstream that ignores it runs the request's own.
func overriddenPast(ctx *fasthttp.RequestCtx, t *tenants.Tenant) bool {
	h, path := &ctx.Request.Header, ctx.Path()
	var buf [16]byte
	differs := func(m []byte) bool {
		if len(m) == 0 || len(m) > len(buf) {
			return len(m) > 0 // no method is that long: refused as unknown
		}
		up := buf[:len(m)]
		for i, c := range m {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A' // the frameworks upper-case it
			}
			up[i] = c
		}
		return !t.SameRules(up, h.Method(), path)
	}
	// Each method a value names: Express takes the first of a list (Node
	// joins a repeated field with ", "), others may take another.
	anyDiffers := func(v []byte) bool {
		for m := range bytes.SplitSeq(v, []byte{','}) {
			if differs(bytes.Trim(m, " \t")) {
				return true
			}
		}
		return false
	}
	for k, v := range fields(h) {
		for _, f := range overrideFields {
			if upstream.FoldedName(k, f) && anyDiffers(v) { // X-HTTP-Method_Override too
				return true
			}
		}
	}
	if q := ctx.URI().QueryString(); len(q) > 0 {
		// Parsed apart: once ctx.QueryArgs() is, fasthttp writes the
		// upstream's query from the parsed arguments, re-encoded.
		args := fasthttp.AcquireArgs()
		defer fasthttp.ReleaseArgs(args)
		args.ParseBytes(q)
		for k, v := range args.All() { // decoded: %5Fmethod is _method
			if overrideParam(k) && anyDiffers(v) {
				return true
			}
		}
	}
	return false
}

// isASCII: every byte of b is below 0x80.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// authKey is the key of an Authorization value: a Bearer token, or with
// tenants.key_basic_auth Basic credentials' key, and then user, the
// user-id when the key is the password. Nil for another scheme.
func (g *Gateway) authKey(auth, buf []byte) (key, user []byte, p problem, ok bool) {
	if len(auth) == 0 {
		return nil, nil, problem{}, true
	}
	if key := tenants.KeyFrom(nil, auth); len(key) > 0 || !g.basicAuth {
		if bytes.ContainsAny(key, " \t") {
			// "Bearer KEY junk": an upstream splitting on whitespace reads
			// KEY, the gateway "KEY junk". A token68 has no white space.
			return nil, nil, problemBearerSpace, false
		}
		return key, nil, problem{}, true
	}
	key, user, ok = tenants.BasicKey(buf, auth)
	if !ok {
		return nil, nil, problemBadBasic, false
	}
	return key, user, problem{}, true
}

// keyUnderOtherScheme says whether an Authorization value the gateway
// reads no key from (another scheme, or none) still holds a tenant's key
// where an upstream splitting on whitespace would find it: the whole
// value ("KEY"), what follows its first word ("Token KEY"), one of its
// first authWords words ("Token KEY x", split(" ")[1]) or its last
// ("Token x y KEY"). At most authWords + 3 lookups, of at most a key's
// length each, whatever the value's length.
func keyUnderOtherScheme(snap *tenants.Snapshot, v []byte) bool {
	known := func(k []byte) bool { return len(k) <= tenants.KeyBufLen && snap.Known(k) }
	if known(v) || keyForAFramework(snap, v, nil) {
		return true
	}
	i := bytes.IndexAny(v, " \t")
	if i <= 0 {
		return false
	}
	if known(bytes.Trim(v[i:], " \t")) {
		return true
	}
	n, last := 0, []byte(nil)
	for w := range bytes.FieldsFuncSeq(v, blank) {
		if n < authWords && known(w) {
			return true
		}
		n, last = n+1, w
	}
	return n > authWords && known(last)
}

// authWords bounds the words of an Authorization value looked up as keys
// (keyUnderOtherScheme): the scheme and the first ones, where parsers
// look; the last is looked up too.
const authWords = 4

// blank: a space or a tab, what separates an Authorization's words.
func blank(r rune) bool { return r == ' ' || r == '\t' }

// refuse answers a request without a usable key: a 401 carries the
// gateway's challenge.
func (g *Gateway) refuse(ctx *fasthttp.RequestCtx, p problem) {
	g.reject(ctx, p)
	if p.status == fasthttp.StatusUnauthorized {
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, g.challenge)
	}
}

// stripKeyQuery removes the key parameter from the URI the upstream gets,
// leaving the other parameters as the client sent them.
func (g *Gateway) stripKeyQuery(u *fasthttp.URI) {
	u.SetQueryStringBytes(tenants.StripQueryParam(u.QueryString(), g.keyQuery))
}

// Identity problems: all refuse before the limiter is asked.
var (
	problemKeyConflict        = badRequest("the request carries two different API keys (key header, query parameter, Authorization): send one")
	problemBearerSpace        = badRequest("the Bearer token in Authorization holds white space, which a token never does and where a server splitting on it reads another token: send Authorization: Bearer <key>")
	problemKeyParsedElsewhere = badRequest("Authorization holds an API key where some servers read one (after its last \"Bearer \", before a ',' or ';', or as token=\"…\") other than the key the gateway reads: send Authorization: Bearer <key>")
	problemKeyOtherScheme     = badRequest("Authorization carries an API key under a scheme other than Bearer (or Basic with key_basic_auth): send Authorization: Bearer <key>")
	problemKeyNotASCII        = badRequest("the API key (header or query parameter) holds a byte outside ASCII, which some servers strip as white space (0x85, 0xA0): keys are ASCII")
	problemAuthNotASCII       = badRequest("Authorization holds a byte outside ASCII, which some servers read as white space (0x85, 0xA0) and so could find a key the gateway does not: credentials are ASCII")
	problemMethodOverride     = badRequest("X-HTTP-Method-Override (or X-HTTP-Method, X-Method-Override, _method) names a method whose limits on this path differ from the request's: send the request with that method")
	problemKeyQueryTwice      = badRequest("the API key query parameter is sent more than once")
	problemKeyQueryLong       = problem{fasthttp.StatusUnauthorized, typeBlank, "Unauthorized",
		"the API key query parameter is longer than " + strconv.Itoa(tenants.KeyBufLen) + " bytes once decoded"}
	problemBadBasic = problem{fasthttp.StatusUnauthorized, typeBlank, "Unauthorized",
		"Authorization: Basic must carry base64 of user-id:password, at most " + strconv.Itoa(tenants.KeyBufLen) +
			" bytes decoded; the key is the password, or the user-id when the password is empty"}
)

// keyUnderscoreProblem is the 400 for a request carrying the key header
// spelt with '_' for some of its '-', or the other way round.
func keyUnderscoreProblem(keyHeader string) problem {
	return badRequest("the request carries " + keyHeader + " spelt otherwise ('_' for '-' or '-' for '_', as " +
		strings.ReplaceAll(keyHeader, "-", "_") + "), which some servers read as the API key header " +
		keyHeader + ": send the key in " + keyHeader + " only")
}

// missingKey is the 401 for a request without a key: it names where a
// key may be sent. The header and parameter names are validated tokens,
// with nothing to escape in JSON.
func missingKey(o tenants.Options) problem {
	where := "send it in the " + o.KeyHeader + " header"
	if o.KeyQuery != "" {
		where += ", in the " + o.KeyQuery + " query parameter"
	}
	where += " or as Authorization: Bearer <key>"
	if o.KeyBasicAuth {
		where += " or Basic credentials"
	}
	return problem{fasthttp.StatusUnauthorized, typeBlank, "Unauthorized", "an API key is required: " + where}
}
