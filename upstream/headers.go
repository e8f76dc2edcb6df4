package upstream

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// hopByHop are the connection-specific fields of RFC 9110 §7.6.1 (plus the
// obsolete ones still seen), which a proxy must not forward. Close is a
// reserved field name (RFC 9110 §18.4), as the "close" connection option
// would name it: fasthttp answers Connection "close" for every HTTP/1.0
// request, so whether a Close field went through depended on whether the
// Connection-named deletions ran (found by FuzzPrepareSkipsOnlyWhatIsNotThere).
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization",
	"Close",
}

// hopByHopNames is hopByHop as bytes, for IsHopByHop.
var hopByHopNames = func() [][]byte {
	b := make([][]byte, len(hopByHop))
	for i, k := range hopByHop {
		b[i] = []byte(k)
	}
	return b
}()

// StripRequestHopByHop removes the hop-by-hop fields of a request and
// every field its Connection field names. It does not allocate.
func StripRequestHopByHop(h *fasthttp.RequestHeader) {
	var buf [256]byte
	for v := requestConnection(buf[:0], h); len(v) > 0; {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte{','})
		if tok = bytes.TrimSpace(tok); len(tok) > 0 && !framing(tok) {
			h.DelBytes(tok)
		}
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
}

// IsHopByHop says whether name, in any case, is one of the hop-by-hop
// fields a proxy removes whatever Connection says.
func IsHopByHop(name []byte) bool { return oneOf(name, hopByHopNames) }

// StripResponseHopByHop is StripRequestHopByHop for a response:
// CleanResponse with no field of the gateway's own.
func StripResponseHopByHop(h *fasthttp.ResponseHeader) { CleanResponse(h, nil) }

// CleanResponse removes from an upstream's response its hop-by-hop
// fields, the fields its Connection names, and every field own reports
// true for (nil: none), and keeps the lines of every other name in the
// order the upstream sent them (RFC 9110 §5.3): fasthttp fills a deleted
// field's place with the last field, which may be another line of a name
// sent more than once. A response without any of those fields, most of
// them, costs one pass over its fields. It allocates only to put back a
// name it moved, or for a header over 4 KiB.
func CleanResponse(h *fasthttp.ResponseHeader, own func(name []byte) bool) {
	found := false
	for k := range h.All() { // Connection: close and Trailer included
		if IsHopByHop(k) || own != nil && own(k) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	// The fields, copied in order before the deletions move them: into
	// buf, or the heap past its size. Here, not in a function: a slice of
	// buf stored through a parameter would move buf to the heap.
	var buf [4 << 10]byte
	var lines [maxOrdered]field
	n, size := 0, 0
	for k, v := range h.All() {
		n++
		size += len(k) + len(v)
	}
	ok := n <= len(lines)
	if ok {
		b := buf[:]
		if size > len(b) {
			b = make([]byte, size)
		}
		n = 0
		for k, v := range h.All() {
			name := b[:copy(b, k)]
			b = b[len(name):]
			value := b[:copy(b, v)]
			b = b[len(value):]
			lines[n] = field{name: name, value: value}
			n++
		}
	}
	stripResponse(h)
	if own != nil {
		delOwn(h, own)
	}
	if ok {
		restoreResponseOrder(h, lines[:n])
	}
}

// delOwn deletes every field of h own reports true for: a name at a
// time, at most maxOrdered names (a field DelBytes cannot remove must not
// loop it forever).
func delOwn(h *fasthttp.ResponseHeader, own func(name []byte) bool) {
	var nb [64]byte
	for range maxOrdered {
		var name []byte
		for k := range h.All() {
			if own(k) {
				name = append(nb[:0], k...) // the deletion moves what k points into
				break
			}
		}
		if name == nil {
			return
		}
		h.DelBytes(name)
	}
}

// restoreResponseOrder puts the lines of every name lines holds more than
// once back in that order, after deletions moved them (see RestoreOrder).
// A name deleted whole, or kept once by fasthttp (Set-Cookie by cookie,
// Server, Content-Type …), is left alone.
func restoreResponseOrder(h *fasthttp.ResponseHeader, lines []field) {
	var moves [maxOrdered]int
	nm, disordered := 0, false
	for i := range lines {
		name := lines[i].name
		if single(name) || responseSingle(name) || !repeated(lines, i) {
			continue
		}
		cur := h.PeekAll(string(name))
		if len(cur) == 0 || !sameValues(lines, i, cur) {
			continue // deleted, or not the upstream's lines
		}
		if !inOrder(lines, i, cur) {
			disordered = true
		}
		moves[nm] = i
		nm++
	}
	if !disordered {
		return
	}
	// Every repeated name moves, in order: deleting one may move another.
	for _, i := range moves[:nm] {
		h.DelBytes(lines[i].name)
	}
	for _, i := range moves[:nm] {
		for _, l := range lines[i:] {
			if bytes.EqualFold(l.name, lines[i].name) {
				h.AddBytesKV(lines[i].name, l.value)
			}
		}
	}
}

// responseSingle: a response field fasthttp keeps apart from the others,
// once (Set-Cookie once per cookie).
func responseSingle(name []byte) bool { return oneOf(name, responseSingleNames) }

var responseSingleNames = [][]byte{
	[]byte(fasthttp.HeaderSetCookie), []byte(fasthttp.HeaderServer), []byte(fasthttp.HeaderContentEncoding),
	[]byte(fasthttp.HeaderDate),
}

// stripResponse is StripResponseHopByHop's deletions. It and
// StripRequestHopByHop stay concrete twins: through an interface or a
// generic type parameter the token buffer escapes and every request pays
// two allocations.
func stripResponse(h *fasthttp.ResponseHeader) {
	var buf [256]byte
	for v := responseConnection(buf[:0], h); len(v) > 0; {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte{','})
		if tok = bytes.TrimSpace(tok); len(tok) > 0 && !framing(tok) {
			h.DelBytes(tok)
		}
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
}

// responseConnection copies the values of h's Connection lines into buf,
// comma-separated (see connectionNames). Not PeekAll: for a response
// that ends when the connection closes, it answers only "close", and the
// fields the upstream's Connection named would go through.
func responseConnection(buf []byte, h *fasthttp.ResponseHeader) []byte {
	for k, v := range h.All() {
		if bytes.EqualFold(k, hdrConnection) {
			buf = append(append(buf, v...), ',')
		}
	}
	return buf
}

var hdrConnection = []byte(fasthttp.HeaderConnection)

// framing: a field that says where the message ends or whom it is for.
// Connection naming it does not remove it: without Content-Length the
// body would go out unframed, and fasthttp would fail the forward.
func framing(name []byte) bool {
	return bytes.EqualFold(name, hdrContentLength) || bytes.EqualFold(name, hdrHost)
}

var (
	hdrContentLength = []byte(fasthttp.HeaderContentLength)
	hdrHost          = []byte(fasthttp.HeaderHost)
)

// connectionNames copies the Connection values into buf, comma-separated:
// deleting fields moves the header's storage under the slices PeekAll
// returned.
func connectionNames(buf []byte, values [][]byte) []byte {
	for _, v := range values {
		buf = append(append(buf, v...), ',')
	}
	return buf
}

// requestConnection copies the values of h's Connection lines into buf,
// comma-separated (see connectionNames), as the client sent them: from
// the raw header block, a folded line's continuation included. Not
// PeekAll: after a line "Connection: close" fasthttp answers only
// "close", and the fields an earlier line named would go through. A
// header built in code, with no raw block, is read with PeekAll.
func requestConnection(buf []byte, h *fasthttp.RequestHeader) []byte {
	raw := h.RawHeaders()
	if len(raw) == 0 {
		return connectionNames(buf, h.PeekAll(fasthttp.HeaderConnection))
	}
	in := false // the last field began with a Connection line
	for line := range bytes.Lines(raw) {
		if line[0] == ' ' || line[0] == '\t' { // obs-fold: the field goes on
			if in {
				buf = append(append(buf, bytes.Trim(line, " \t\r\n")...), ',')
			}
			continue
		}
		k, v, ok := bytes.Cut(line, []byte{':'})
		if in = ok && bytes.EqualFold(bytes.TrimRight(k, " \t"), hdrConnection); in {
			buf = append(append(buf, bytes.Trim(v, " \t\r\n")...), ',')
		}
	}
	return buf
}

// ConnectionNames counts the field names a request's Connection lines
// name, as StripRequestHopByHop reads them: the deletions it will make.
func ConnectionNames(h *fasthttp.RequestHeader) int {
	var buf [256]byte
	n := 0
	for v := requestConnection(buf[:0], h); len(v) > 0; {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte{','})
		if len(bytes.Trim(tok, " \t")) > 0 {
			n++
		}
	}
	return n
}

// headerRequestID is X-Request-Id in its canonical form, as SetCanonical
// needs.
const headerRequestID = "X-Request-Id"

var (
	hdrXFF       = []byte("X-Forwarded-For")
	hdrForwarded = []byte("Forwarded")
	hdrXFProto   = []byte("X-Forwarded-Proto")
	hdrXFHost    = []byte("X-Forwarded-Host")
	// The client address fields of nginx (X-Real-IP) and of CDNs
	// (True-Client-IP), which frameworks read before X-Forwarded-For
	// (chi's RealIP, for one).
	hdrXRealIP      = []byte("X-Real-Ip")
	hdrTrueClientIP = []byte("True-Client-Ip")
	hdrRequestID    = []byte(headerRequestID)
	protoHTTP       = []byte("http")
	protoHTTPS      = []byte("https")
)

// IsForwarding says whether name, in any case and with '_' for any '-'
// (as CGI reads HTTP_X_FORWARDED_PORT), says where a request came from or
// how: any X-Forwarded-* (-For, -Proto, -Host, which SetForwarded sets,
// and -Port, -Prefix, -Ssl, -Scheme and the like, which frameworks build
// URLs and redirects from), Forwarded, and the client address fields
// frameworks and CDNs read (X-Real-IP, True-Client-IP, Client-IP and
// more: clientAddressNames). At the edge the gateway removes every one a
// client sent. A request without one can be given NoneSent.
func IsForwarding(name []byte) bool {
	if len(name) > len(xForwardedPrefix) && FoldedName(name[:len(xForwardedPrefix)], xForwardedPrefix) {
		return true
	}
	for _, k := range clientAddressNames {
		if FoldedName(name, k) {
			return true
		}
	}
	return false
}

// xForwardedPrefix begins the X-Forwarded-* family.
var xForwardedPrefix = []byte("X-Forwarded-")

// clientAddressNames are the fields besides X-Forwarded-* that name a
// client's address: RFC 7239's, nginx's X-Real-IP, the CDNs' (Akamai and
// Cloudflare's True-Client-IP, Cloudflare's CF-Connecting-IP, Fastly's),
// and those Rack and Rails read (Client-IP, X-Client-IP,
// X-Cluster-Client-IP), with two spellings of X-Forwarded-For's.
var clientAddressNames = [][]byte{hdrForwarded, hdrXRealIP, hdrTrueClientIP,
	[]byte("Client-Ip"), []byte("X-Client-Ip"), []byte("X-Cluster-Client-Ip"),
	[]byte("Cf-Connecting-Ip"), []byte("Fastly-Client-Ip"),
	[]byte("Forwarded-For"), []byte("X-Original-Forwarded-For")}

// FoldedName reports whether name is canonical with '-' and '_' taken as
// one, in any case: the name CGI, WSGI and their kin read it as
// (HTTP_X_API_KEY).
func FoldedName(name, canonical []byte) bool {
	if len(name) != len(canonical) {
		return false
	}
	for i, c := range name {
		d := canonical[i]
		if c == '_' {
			c = '-'
		}
		if d == '_' {
			d = '-'
		}
		if c|0x20 != d|0x20 || (c|0x20 < 'a' || c|0x20 > 'z') && c != d {
			return false
		}
	}
	return true
}

// Forwarded describes the hop a request came over.
type Forwarded struct {
	// ClientIP is the peer's address.
	ClientIP net.IP
	// TLS is whether the client connection used TLS.
	TLS bool
	// Trust keeps X-Forwarded-Proto and X-Forwarded-Host that a fronting
	// proxy set, instead of overwriting them.
	Trust bool
	// NoneSent says the request holds none of Forwarded, X-Forwarded-For,
	// -Proto and -Host (its caller read the header block): there is
	// nothing to remove or keep, and the fields are only set.
	NoneSent bool
	// Host is the host the request was routed by, for X-Forwarded-Host:
	// an absolute-form target's, which RFC 9112 §3.2.2 puts before the
	// Host header. Nil: the Host header's.
	Host []byte
}

// Own sets a request header the gateway owns to value: every copy the
// client sent (in any case of its name, header or trailer) goes first, so
// the upstream gets exactly one, the gateway's. value must not alias h.
func Own(h *fasthttp.RequestHeader, key, value []byte) {
	h.DelBytes(key)
	h.SetCanonical(key, value)
}

// SetForwarded sets X-Forwarded-For, -Proto and -Host, each exactly once
// (Own). At the edge (no trust) whatever the client sent is replaced,
// X-Forwarded-For by the peer's address alone, and Forwarded, X-Real-IP
// and True-Client-IP are removed: an upstream reading the leftmost entry,
// or one of those, must not get an address the client chose. Behind a trusted proxy the peer is appended to its
// X-Forwarded-For (every copy, in order), and its -Proto and -Host (the
// first copy) are kept. It does not allocate for ordinary header sizes.
func SetForwarded(h *fasthttp.RequestHeader, f Forwarded) {
	var buf [256]byte
	b := buf[:0]
	proto := protoHTTP
	if f.TLS {
		proto = protoHTTPS
	}
	routed := f.Host
	if routed == nil {
		routed = h.Host()
	}
	var host [256]byte
	fwdHost := append(host[:0], routed...) // setting fields may reuse what h.Host() points into
	if f.NoneSent {
		h.SetCanonical(hdrXFF, appendIP(b, f.ClientIP))
		h.SetCanonical(hdrXFProto, proto)
		h.SetCanonical(hdrXFHost, fwdHost)
		return
	}
	if f.Trust {
		for _, prev := range h.PeekAll(fasthttp.HeaderXForwardedFor) {
			b = append(append(b, prev...), ", "...)
		}
	} else {
		h.DelBytes(hdrForwarded)
		h.DelBytes(hdrXRealIP)
		h.DelBytes(hdrTrueClientIP)
	}
	b = appendIP(b, f.ClientIP)
	Own(h, hdrXFF, b)
	ownKept(h, hdrXFProto, proto, f.Trust)
	ownKept(h, hdrXFHost, fwdHost, f.Trust)
}

// ownKept owns key: with keep, its first copy stays if there is one (a
// trusted proxy set it); otherwise it is value.
func ownKept(h *fasthttp.RequestHeader, key, value []byte, keep bool) {
	var buf [256]byte
	if prev := h.PeekBytes(key); keep && len(prev) > 0 && len(prev) <= len(buf) {
		value = append(buf[:0], prev...)
	}
	Own(h, key, value)
}

// appendIP appends ip's text form without allocating.
func appendIP(b []byte, ip net.IP) []byte {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return append(b, "unknown"...)
	}
	return a.Unmap().AppendTo(b)
}

// maxRequestIDLen bounds a client-supplied X-Request-ID.
const maxRequestIDLen = 128

// validRequestID: 1–128 of [A-Za-z0-9._:-].
func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// IDs makes request IDs: a per-process random prefix and a counter, so
// they are unique across gateways and cost no allocation.
type IDs struct {
	prefix string
	n      atomic.Uint64
}

// NewIDs returns a generator whose IDs start with prefix (say, 8 random hex
// digits chosen at start-up).
func NewIDs(prefix string) *IDs { return &IDs{prefix: prefix} }

// EnsureRequestID keeps the client's X-Request-ID when it is valid and
// sent once, and sets a new one otherwise (Own); it returns the ID, which
// stays valid as long as h.
func (g *IDs) EnsureRequestID(h *fasthttp.RequestHeader) []byte {
	if id := h.PeekBytes(hdrRequestID); validRequestID(id) && len(h.PeekAll(headerRequestID)) == 1 {
		return id
	}
	var buf [64]byte
	Own(h, hdrRequestID, g.Append(buf[:0]))
	return h.PeekBytes(hdrRequestID)
}

// Append appends a new request ID to b: the prefix, '-', and the next
// count in base 36, at most len(prefix)+14 bytes.
func (g *IDs) Append(b []byte) []byte {
	b = append(append(b, g.prefix...), '-')
	return strconv.AppendUint(b, g.n.Add(1), 36)
}

// maxOrdered bounds the fields RestoreOrder reads; a block with more is
// left as it is.
const maxOrdered = 64

// RestoreOrder puts the lines of every name a request's raw header block
// holds more than once back in the order they were sent (RFC 9110 §5.3:
// a proxy must not reorder them), after deletions moved them: fasthttp
// fills the place of a deleted field with the last one. A name whose
// values changed since (one replaced) keeps the order it has. Names fasthttp keeps once (Host, Cookie, Content-Length
// and the like) are left alone, as is a block of over 64 fields. Call it
// before adding fields of those names, which it would take for the
// client's. It allocates only for a folded line or a name it moves.
func RestoreOrder(h *fasthttp.RequestHeader) {
	var lines [maxOrdered]field
	n, ok := readFields(h.RawHeaders(), lines[:])
	if !ok {
		return
	}
	type move struct {
		line     int  // the name's first line
		changed  bool // its values are held[from:to], not its lines'
		from, to int
	}
	var moves [maxOrdered]move
	var held [maxOrdered][]byte
	nm, nh, disordered := 0, 0, false
	for i := range n {
		name := lines[i].name
		if single(name) || !repeated(lines[:n], i) {
			continue
		}
		cur := h.PeekAll(string(name))
		if len(cur) == 0 {
			continue // removed
		}
		m := move{line: i, from: nh, to: nh}
		if !sameValues(lines[:n], i, cur) {
			if nh+len(cur) > len(held) {
				return // nothing moved yet
			}
			m.changed = true
			for _, v := range cur {
				held[nh] = append([]byte(nil), v...) // cur is overwritten below
				nh++
			}
			m.to = nh
		} else if !inOrder(lines[:n], i, cur) {
			disordered = true
		}
		moves[nm] = m
		nm++
	}
	if !disordered {
		return
	}
	// Every repeated name moves, in order: deleting one may move another.
	for _, m := range moves[:nm] {
		h.DelBytes(lines[m.line].name)
	}
	for _, m := range moves[:nm] {
		name := lines[m.line].name
		if m.changed {
			for _, v := range held[m.from:m.to] {
				h.AddBytesKV(name, v)
			}
			continue
		}
		for _, l := range lines[m.line:n] {
			if bytes.EqualFold(l.name, name) {
				h.AddBytesKV(name, l.value)
			}
		}
	}
}

// inOrder: cur are the values of the name of lines[i] in the order sent.
func inOrder(lines []field, i int, cur [][]byte) bool {
	k := 0
	for _, l := range lines[i:] {
		if bytes.EqualFold(l.name, lines[i].name) {
			if k == len(cur) || !bytes.Equal(cur[k], l.value) {
				return false
			}
			k++
		}
	}
	return k == len(cur)
}

// field is one line of a raw header block.
type field struct{ name, value []byte }

// readFields splits a raw header block into its fields, as fasthttp reads
// them: the name up to the colon, blanks trimmed off the value, a folded
// line joined to the value with a space. It fails past len(dst) fields.
func readFields(raw []byte, dst []field) (int, bool) {
	n := 0
	for line := range bytes.Lines(raw) {
		if line = bytes.TrimRight(line, "\r\n"); len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if n == 0 {
				return 0, false
			}
			f, part := &dst[n-1], bytes.Trim(line, " \t")
			if len(f.value) == 0 {
				f.value = part
				continue
			}
			f.value = append(append(append([]byte(nil), f.value...), ' '), part...) // rare: RFC 9112 forbids folding
			continue
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 || n == len(dst) {
			return 0, false
		}
		dst[n] = field{name: bytes.TrimRight(line[:c], " \t"), value: bytes.Trim(line[c+1:], " \t")}
		n++
	}
	return n, true
}

// repeated: the name of lines[i] is on no earlier line and on a later one.
func repeated(lines []field, i int) bool {
	for j := range i {
		if bytes.EqualFold(lines[j].name, lines[i].name) {
			return false
		}
	}
	for _, l := range lines[i+1:] {
		if bytes.EqualFold(l.name, lines[i].name) {
			return true
		}
	}
	return false
}

// sameValues: the values h holds for the name of lines[i] are those its
// lines were sent with, as many and each as often.
func sameValues(lines []field, i int, cur [][]byte) bool {
	var used [maxOrdered]bool
	sent := 0
	for _, l := range lines[i:] {
		if !bytes.EqualFold(l.name, lines[i].name) {
			continue
		}
		sent++
		found := false
		for k, v := range cur {
			if !used[k] && bytes.Equal(v, l.value) {
				used[k], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return sent == len(cur)
}

// single: a name fasthttp keeps one value of, or handles apart.
func single(name []byte) bool { return oneOf(name, singleNames) }

// oneOf reports whether name, in any case, is one of names: of the same
// length, so a non-ASCII letter that folds to an ASCII one (the Kelvin
// sign to k) never matches a field name.
func oneOf(name []byte, names [][]byte) bool {
	for _, k := range names {
		if len(k) == len(name) && bytes.EqualFold(name, k) {
			return true
		}
	}
	return false
}

var singleNames = [][]byte{
	[]byte(fasthttp.HeaderHost), []byte(fasthttp.HeaderContentType), []byte(fasthttp.HeaderContentLength),
	[]byte(fasthttp.HeaderUserAgent), []byte(fasthttp.HeaderCookie), []byte(fasthttp.HeaderConnection),
	[]byte(fasthttp.HeaderTransferEncoding), []byte(fasthttp.HeaderTrailer),
}
