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
// obsolete ones still seen), which a proxy must not forward.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization",
}

// StripRequestHopByHop removes the hop-by-hop fields of a request and
// every field its Connection field names. It does not allocate.
func StripRequestHopByHop(h *fasthttp.RequestHeader) {
	var buf [256]byte
	for v := connectionNames(buf[:0], h.PeekAll(fasthttp.HeaderConnection)); len(v) > 0; {
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

// StripResponseHopByHop is StripRequestHopByHop for a response. The two
// stay concrete twins: through an interface or a generic type parameter
// the token buffer escapes and every request pays two allocations.
func StripResponseHopByHop(h *fasthttp.ResponseHeader) {
	var buf [256]byte
	for v := connectionNames(buf[:0], h.PeekAll(fasthttp.HeaderConnection)); len(v) > 0; {
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
// returned. (fasthttp keeps a single Connection field; a later line
// replaces an earlier one.)
func connectionNames(buf []byte, values [][]byte) []byte {
	for _, v := range values {
		buf = append(append(buf, v...), ',')
	}
	return buf
}

// headerRequestID is X-Request-Id in its canonical form, as SetCanonical
// needs.
const headerRequestID = "X-Request-Id"

var (
	hdrXFF       = []byte("X-Forwarded-For")
	hdrForwarded = []byte("Forwarded")
	hdrXFProto   = []byte("X-Forwarded-Proto")
	hdrXFHost    = []byte("X-Forwarded-Host")
	hdrRequestID = []byte(headerRequestID)
	protoHTTP    = []byte("http")
	protoHTTPS   = []byte("https")
)

// Forwarded describes the hop a request came over.
type Forwarded struct {
	// ClientIP is the peer's address.
	ClientIP net.IP
	// TLS is whether the client connection used TLS.
	TLS bool
	// Trust keeps X-Forwarded-Proto and X-Forwarded-Host that a fronting
	// proxy set, instead of overwriting them.
	Trust bool
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
// X-Forwarded-For by the peer's address alone, and a Forwarded header is
// removed: an upstream reading the leftmost entry must not get an address
// the client chose. Behind a trusted proxy the peer is appended to its
// X-Forwarded-For (every copy, in order), and its -Proto and -Host (the
// first copy) are kept. It does not allocate for ordinary header sizes.
func SetForwarded(h *fasthttp.RequestHeader, f Forwarded) {
	var buf [256]byte
	b := buf[:0]
	if f.Trust {
		for _, prev := range h.PeekAll(fasthttp.HeaderXForwardedFor) {
			b = append(append(b, prev...), ", "...)
		}
	} else {
		h.DelBytes(hdrForwarded)
	}
	b = appendIP(b, f.ClientIP)
	Own(h, hdrXFF, b)
	proto := protoHTTP
	if f.TLS {
		proto = protoHTTPS
	}
	ownKept(h, hdrXFProto, proto, f.Trust)
	var host [256]byte
	ownKept(h, hdrXFHost, append(host[:0], h.Host()...), f.Trust)
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
	b := append(buf[:0], g.prefix...)
	b = append(b, '-')
	b = strconv.AppendUint(b, g.n.Add(1), 36)
	Own(h, hdrRequestID, b)
	return h.PeekBytes(hdrRequestID)
}
