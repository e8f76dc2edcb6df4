package gateway

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/upstream"
)

// The refusals of a request line the gateway does not forward.
var (
	problemVersion = problem{fasthttp.StatusHTTPVersionNotSupported, typeBlank, "HTTP Version Not Supported",
		"the gateway speaks HTTP/1.1 and HTTP/1.0"}
	problemMethodNotAllowed = problem{fasthttp.StatusMethodNotAllowed, typeBlank, "Method Not Allowed",
		"CONNECT and TRACE are not forwarded"}
	problemUnknownMethod = problem{fasthttp.StatusNotImplemented, typeBlank, "Not Implemented",
		"the method is not one the gateway forwards: GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS, in upper case"}
	problemNoHost        = badRequest("the request names no host: send Host (or an absolute-form target with a host of its own), which routes the request and the upstream needs")
	problemUserinfo      = badRequest("the request target carries user information (user:password@)")
	problemAmbiguousPath = badRequest("the path is ambiguous: an encoded '/', '\\\\', '.', ';' or '%', a '\\\\' or ';', an empty, '.' or '..' segment, or a control byte")
)

// The refusals of a header block whose hop-by-hop fields the gateway
// cannot pass on safely. Both close the connection.
var (
	problemTransferEncoding = badRequest("Transfer-Encoding is other than chunked, once: the body's length is ambiguous (RFC 9112 §6.1)")
	problemConnectionNames  = badRequest("Connection names more than 32 fields")
)

// maxConnectionNames bounds the fields a request's Connection may name:
// the gateway removes each, a pass over every field of the request
// (upstream.StripRequestHopByHop).
const maxConnectionNames = 32

var (
	hdrTransferEncoding = []byte(fasthttp.HeaderTransferEncoding)
	chunked             = []byte("chunked")
)

// hopByHopProblem refuses a request whose Transfer-Encoding is anything
// but one chunked, which fasthttp reads otherwise: it takes "identity"
// for no body at all, and would read the body as the connection's next
// request. And one whose Connection names more than maxConnectionNames
// fields: the deletions would cost the square of the header block. Read
// for a request with a hop-by-hop field (sentHopByHop) only.
func hopByHopProblem(h *fasthttp.RequestHeader) *problem {
	codings := 0
	for k, v := range fields(h) {
		if bytes.EqualFold(k, hdrTransferEncoding) {
			if codings++; codings > 1 || !bytes.EqualFold(v, chunked) {
				return &problemTransferEncoding
			}
		}
	}
	// The names as the deletions read them.
	if upstream.ConnectionNames(h) > maxConnectionNames {
		return &problemConnectionNames
	}
	return nil
}

var (
	http11 = []byte("HTTP/1.1")
	http10 = []byte("HTTP/1.0")
	// allowMethods is the Allow header of a 405.
	allowMethods = []byte("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
	hdrAllow     = []byte("Allow")
)

// ForwardsMethod reports whether the gateway forwards requests of method
// m: RFC 9110's methods, matched case-sensitively as it says, less
// CONNECT and TRACE (405), plus PATCH; any other is a 501.
func ForwardsMethod(m []byte) bool {
	switch string(m) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodPost, fasthttp.MethodPut,
		fasthttp.MethodPatch, fasthttp.MethodDelete, fasthttp.MethodOptions:
		return true
	}
	return false
}

// checkRequestLine refuses a version other than HTTP/1.1 or 1.0, a method
// the gateway does not forward, user information in the target, a request
// that names no host (by Host or its absolute-form target), and an
// ambiguous path: one whose routing
// here and meaning upstream could differ. The routes and limits match the
// decoded path, and the upstream gets the path as sent; refusing every
// encoding that decoding or normalising would change makes the two agree.
func checkRequestLine(ctx *fasthttp.RequestCtx) (problem, bool) {
	h := &ctx.Request.Header
	if p := h.Protocol(); !bytes.Equal(p, http11) && !bytes.Equal(p, http10) {
		return problemVersion, false
	}
	switch m := h.Method(); {
	case ForwardsMethod(m):
	case string(m) == fasthttp.MethodConnect || string(m) == fasthttp.MethodTrace:
		return problemMethodNotAllowed, false
	default:
		return problemUnknownMethod, false
	}
	u := ctx.URI()
	if len(u.Username()) > 0 || len(u.Password()) > 0 {
		// fasthttp's client would send it on as Authorization: Basic.
		return problemUserinfo, false
	}
	if len(upstream.Hostname(u.Host())) == 0 {
		// "GET http:///x" beside Host: a: routed by the target's empty
		// host, past a's routes, and sent on with no Host at all. An
		// HTTP/1.0 request without Host, which its version allows, was a
		// 502: the upstream's client will not send a request without one.
		return problemNoHost, false
	}
	if bytes.IndexByte(h.RequestURI(), '#') >= 0 || AmbiguousPath(u.PathOriginal()) {
		// A fragment is never part of a request target (RFC 9112 §3.2);
		// the router would not see it, an upstream might.
		return problemAmbiguousPath, false
	}
	return problem{}, true
}

// AmbiguousPath reports whether the gateway refuses path p (400): p is
// not an origin path, or holds what decoding or dot segment removal would
// change: '\' or ';' (some servers split on them), a percent-encoded '/',
// '\', '.', ';', '%' or control byte, a malformed escape, a control byte,
// or an empty, "." or ".." segment. It does not allocate.
func AmbiguousPath(p []byte) bool {
	if len(p) == 0 || p[0] != '/' {
		return true
	}
	segStart := 1
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			seg := p[segStart:i]
			// An empty segment is allowed last only: "/a/" is a path.
			if len(seg) == 0 && i < len(p) || string(seg) == "." || string(seg) == ".." {
				return true
			}
			segStart = i + 1
			continue
		}
		switch c := p[i]; {
		case c == '\\' || c == ';' || c < 0x20 || c == 0x7f:
			return true
		case c == '%':
			if i+2 >= len(p) {
				return true
			}
			d, ok := unhex(p[i+1], p[i+2])
			if !ok || d == '/' || d == '\\' || d == '.' || d == ';' || d == '%' || d < 0x20 || d == 0x7f {
				return true
			}
			i += 2
		}
	}
	return false
}

// unhex decodes two hex digits.
func unhex(a, b byte) (byte, bool) {
	x, ok1 := hexVal(a)
	y, ok2 := hexVal(b)
	return x<<4 | y, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

var contentLengthName = []byte("Content-Length")

// smuggledLength: the raw header block has a Content-Length line. For a
// chunked request that is the CL+TE ambiguity of request smuggling.
func smuggledLength(raw []byte) bool {
	return anyHeaderName(raw, func(name []byte) bool { return bytes.EqualFold(name, contentLengthName) })
}

// anyHeaderName says whether match holds for a header name of the raw
// header block: fasthttp's parsed header keeps one Content-Length, not
// the one it dropped, and normalises names.
func anyHeaderName(raw []byte, match func(name []byte) bool) bool {
	for line := range bytes.Lines(raw) {
		if i := bytes.IndexByte(line, ':'); i > 0 && match(line[:i]) {
			return true
		}
	}
	return false
}
