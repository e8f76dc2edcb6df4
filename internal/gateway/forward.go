package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/upstream"
)

// forward sends the request upstream and leaves its answer, or a problem
// for a failed forward, in ctx.Response. A body is streamed through as the
// client sends it; a chunked one is cut at max_body_bytes (413); one the
// client breaks off is a 400, not the target's failure.
func (g *Gateway) forward(ctx *fasthttp.RequestCtx, pool *upstream.Pool, a *admission) {
	h := &ctx.Request.Header
	closeAfter := h.ConnectionClose()
	body := hasBody(h)
	if !body && ctx.Request.IsBodyStream() {
		// An empty stream: without it the request stays retryable.
		_ = ctx.Request.CloseBodyStream()
	}
	g.prepare(ctx, a)

	req, cb := &ctx.Request, (*clientBody)(nil)
	if body && ctx.Request.IsBodyStream() {
		// Through clientBody, on a copy of the request: a chunked body is
		// cut at max_body_bytes, and a client that breaks off its body is
		// not taken for a failing target.
		out := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(out)
		ctx.Request.CopyTo(out)
		cb = &clientBody{r: ctx.RequestBodyStream(), left: g.maxBody}
		out.SetBodyStream(cb, h.ContentLength())
		req = out
	}
	if err := pool.Forward(req, &ctx.Response); err != nil {
		var ue *upstream.Error
		status := fasthttp.StatusBadGateway
		if errors.As(err, &ue) {
			status = ue.Status()
		}
		switch {
		case cb != nil && cb.over:
			writeProblem(ctx, problemBodySize)
		case errors.Is(err, upstream.ErrClientBody) && upstream.IsTimeout(err):
			writeProblem(ctx, problemTimeout) // its body stalled past read_timeout
		case errors.Is(err, upstream.ErrClientBody):
			writeProblem(ctx, problemBodyCut) // the client is likely gone
		default:
			g.upstreamFailed("forward failed", err.Error(), pool, a)
			writeProblem(ctx, upstreamProblem(status))
		}
		// What of the body the forward did not read is still on the wire.
		closeAfter = closeAfter || body
	} else {
		// The forward reset the header, and with it the server's
		// NoDefaultContentType: an answer without Content-Type would get
		// text/plain from fasthttp, a type the upstream never said.
		ctx.Response.Header.SetNoDefaultContentType(true)
		upstream.CleanResponse(&ctx.Response.Header, rateField)
		if s, ok := ctx.Response.BodyStream().(upstream.Streamed); ok && g.writeTimeout > 0 {
			s.KeepWriting(ctx.Conn(), g.writeTimeout)
		}
	}
	if closeAfter {
		ctx.Response.SetConnectionClose()
	}
}

// upstreamFailed logs a failed forward or upgrade, one line a second at
// most: a client can fail them at its request rate (an upstream down, a
// pool saturated by held streams). dropped counts the lines held back;
// l1gw_upstream_errors_total counts every failure.
func (g *Gateway) upstreamFailed(msg, err string, pool *upstream.Pool, a *admission) {
	if dropped, ok := g.upLog.Allow(); ok {
		g.log.Warn(msg, "err", err, "upstream", pool.Name, "tenant", a.tenant.ID, "dropped", dropped)
	}
}

// owned are the headers the gateway sets: a client's field that an
// upstream may read as one of them (the name with '_' for some of its
// '-', as CGI's HTTP_X_L1GW_TENANT reads both) is removed.
var owned = [][]byte{[]byte("X-L1gw-Tenant"), []byte("X-Forwarded-For"), []byte("X-Forwarded-Proto"),
	[]byte("X-Forwarded-Host"), []byte("X-Request-Id"), []byte("X-Real-Ip"), []byte("True-Client-Ip")}

// fields yields the fields of h as read: from the raw block, since
// walking fasthttp's parsed header rewrites the request's cookies (quotes
// dropped, lines merged). A header built in code, with no raw block, is
// walked.
func fields(h *fasthttp.RequestHeader) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		raw := h.RawHeaders()
		if len(raw) == 0 {
			for k, v := range h.All() {
				if !yield(k, v) {
					return
				}
			}
			return
		}
		for line := range bytes.Lines(raw) {
			if i := bytes.IndexByte(line, ':'); i > 0 && !yield(bytes.Trim(line[:i], " \t"), bytes.Trim(line[i+1:], " \t\r\n")) {
				return
			}
		}
	}
}

// respelt reports whether h holds a field named canonical spelt otherwise
// (upstream.FoldedName, but not canonical in any case).
func respelt(h *fasthttp.RequestHeader, canonical []byte) bool {
	for name := range fields(h) {
		if upstream.FoldedName(name, canonical) && !bytes.EqualFold(name, canonical) {
			return true
		}
	}
	return false
}

// sentFields are the kinds of field, among those prepare removes or
// replaces, that a request's header block holds. Read in one pass over the
// block, they spare prepare a deletion, each a pass over the headers of
// its own, per field the client did not send: nearly all of them.
type sentFields uint8

const (
	// sentHopByHop: a hop-by-hop field (upstream.IsHopByHop). With one,
	// every deletion runs: Connection may name any field, and a chunked
	// body's trailers join the header after the block was read.
	sentHopByHop   sentFields = 1 << iota
	sentUnderscore            // a name with '_'
	sentRequestID             // X-Request-Id
	sentTenant                // X-L1gw-Tenant
	sentForwarded             // upstream.IsForwarding: Forwarded, X-Forwarded-*
	sentRepeated              // a name on more than one line
	// sentConnection: Connection naming keep-alive or close alone, or
	// an HTTP/1.0 request's implied close: only Connection goes.
	sentConnection

	allSent sentFields = 1<<iota - 1

	// sentBadName: a field name with a blank or a control byte inside
	// (fasthttp keeps "X L1gw-Tenant" as one name): not a token (RFC
	// 9110 §5.1), and an upstream may read it as another field, as CGI's
	// mapping reads X_L1gw_Tenant. Refused (problemFieldName); not in
	// allSent, which is what a request may hold, not what it did wrong.
	sentBadName sentFields = 1 << 7
)

// problemFieldName refuses a request with a field name that is not a
// token.
var problemFieldName = badRequest("a field name holds a blank or a control character")

// badName reports whether name, trimmed, holds a blank or a control byte.
func badName(name []byte) bool {
	for _, c := range name {
		if c <= ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

// hdrTenantB is hdrTenant as bytes, for fieldOf.
var hdrTenantB = []byte(hdrTenant)

// sentIn reads which fields a request holds from its raw header block. A
// Connection field of keep-alive or close alone, or none on a request
// fasthttp closes after its answer (HTTP/1.0), is sentConnection; any
// other hop-by-hop field counts as every kind but a repeated name; a
// folded line, or no raw block (a request built, not read), as every
// kind. A name is matched in any case and trimmed of blanks; a field it
// does not recognize counts as none of them; more than maxNames lines
// count as a repeated name. So it errs toward a field being there.
func sentIn(h *fasthttp.RequestHeader) sentFields {
	raw := h.RawHeaders()
	if len(raw) == 0 {
		return allSent
	}
	var s sentFields
	if h.ConnectionClose() {
		s = sentConnection
	}
	var names [maxNames][]byte
	n, folded := 0, false
	for line := range bytes.Lines(raw) {
		if line = bytes.TrimRight(line, "\r\n"); len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			folded = true // a Connection value may name more: every kind
			continue      // at the end, and the names after it still read
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		name = bytes.Trim(name, " \t")
		if badName(name) {
			s |= sentBadName
		}
		f := fieldOf(name)
		if f == sentHopByHop && bytes.EqualFold(name, hdrConnection) && onlyPersistence(value) {
			f = sentConnection
		}
		s |= f
		if n == len(names) {
			s |= sentRepeated
			continue
		}
		for _, seen := range names[:n] {
			if len(seen) == len(name) && bytes.EqualFold(seen, name) {
				s |= sentRepeated
				break
			}
		}
		names[n] = name
		n++
	}
	if folded {
		return s | allSent
	}
	if s&sentHopByHop != 0 {
		return s | allSent&^sentRepeated
	}
	return s
}

// onlyPersistence: a Connection value that names keep-alive or close
// alone, the one most HTTP/1.1 clients send.
func onlyPersistence(v []byte) bool {
	for len(v) > 0 {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte{','})
		if tok = bytes.Trim(tok, " \t"); len(tok) > 0 && !bytes.EqualFold(tok, tokKeepAlive) && !bytes.EqualFold(tok, tokClose) {
			return false
		}
	}
	return true
}

var (
	tokKeepAlive = []byte("keep-alive")
	tokClose     = []byte("close")
)

// maxNames bounds the names sentIn compares.
const maxNames = 32

// fieldOf is the kind of one field name.
func fieldOf(name []byte) sentFields {
	var s sentFields
	if bytes.IndexByte(name, '_') >= 0 {
		s |= sentUnderscore
	}
	switch {
	case upstream.IsHopByHop(name):
		s |= sentHopByHop
	case bytes.EqualFold(name, hdrRequestID):
		s |= sentRequestID
	case bytes.EqualFold(name, hdrTenantB):
		s |= sentTenant
	case upstream.IsForwarding(name):
		s |= sentForwarded
	}
	return s
}

// prepare makes the request the upstream gets: hop-by-hop fields out,
// the request ID, the key hidden, the tenant, the X-Forwarded-* set, as
// a.sent says the client sent them.
func (g *Gateway) prepare(ctx *fasthttp.RequestCtx, a *admission) {
	h, sent, keyIn := &ctx.Request.Header, a.sent, a.keyIn
	switch {
	case sent&sentHopByHop != 0:
		upstream.StripRequestHopByHop(h)
		upstream.Own(h, hdrRequestID, a.reqID()) // even if Connection named it
	case sent&sentConnection != 0:
		h.Del(fasthttp.HeaderConnection) // and fasthttp's close with it
	}
	if g.hideKey {
		h.Del(g.keyHeader)
		if keyIn&keyInAuth != 0 {
			h.DelBytes(hdrAuthorization)
		}
		if keyIn&keyInQuery != 0 {
			g.stripKeyQuery(ctx.URI())
		}
	}
	trust := g.trusted.Peer(ctx.RemoteIP())
	if drop := droppedOf(sent, trust); drop.any {
		dropFields(h, drop)
	}
	if sent&sentTenant != 0 {
		h.Del(hdrTenant) // every copy the client sent
	}
	if sent&sentRepeated != 0 {
		// The deletions above moved fields, and a trusted proxy's
		// X-Forwarded-For lines are read next, in their order.
		upstream.RestoreOrder(h)
	}
	h.Set(hdrTenant, a.tenant.ID)
	// A body the client sent without Content-Type goes without one, not
	// as fasthttp's application/octet-stream.
	h.SetNoDefaultContentType(true)
	upstream.SetForwarded(h, upstream.Forwarded{ClientIP: ctx.RemoteIP(), TLS: ctx.IsTLS(),
		Trust: trust, NoneSent: sent&sentForwarded == 0, Host: ctx.URI().Host()})
	if sent&(sentRepeated|sentForwarded) == sentRepeated|sentForwarded {
		upstream.RestoreOrder(h) // and so did SetForwarded's
	}
}

// dropped is what prepare removes of the client's fields. An upstream
// that reads X_L1gw_Tenant or X-L1gw_Tenant as X-L1gw-Tenant (CGI's
// HTTP_X_L1GW_TENANT) must not get the client's; nor, at the edge (a
// peer not trusted), any field naming where the request came from
// (X-Forwarded-Port, -Prefix, -Ssl: URLs and redirects are built from
// them), in any spelling.
type dropped struct {
	any  bool // some field may be dropped
	edge bool
}

func droppedOf(sent sentFields, trust bool) dropped {
	edge := !trust && sent&sentForwarded != 0
	return dropped{any: edge || sent&sentUnderscore != 0, edge: edge}
}

// drops reports whether the field called name is dropped.
func (d dropped) drops(name []byte) bool {
	return d.edge && upstream.IsForwarding(name) || bytes.IndexByte(name, '_') >= 0 &&
		slices.ContainsFunc(owned, func(o []byte) bool { return upstream.FoldedName(name, o) })
}

// problemDroppedNames refuses a request with more than maxNames distinct
// names of fields the gateway would drop (dropped.drops): each deletion is a
// pass over the header block, so they would cost the square of it.
var problemDroppedNames = badRequest("more than 32 distinct names of forwarding fields, or of fields spelt with '_' for '-'")

// dropsTooMany reports whether h has more than maxNames distinct names
// that drop takes: the request is refused before the limits count it
// (problemDroppedNames), and dropFields never meets one.
func dropsTooMany(h *fasthttp.RequestHeader, drop dropped) bool {
	var names [maxNames][]byte
	n := 0
	for name := range fields(h) {
		if !drop.drops(name) || slices.ContainsFunc(names[:n], func(seen []byte) bool { return bytes.EqualFold(seen, name) }) {
			continue
		}
		if n == len(names) {
			return true
		}
		names[n] = name
		n++
	}
	return false
}

// dropFields removes every line of each field of h that drop names, at
// most maxNames of them (dropsTooMany refused more). It reads the names
// first and copies them, since the deletions move what they point into.
func dropFields(h *fasthttp.RequestHeader, drop dropped) {
	var names [maxNames][]byte
	var buf [maxNames * 24]byte
	n, b := 0, buf[:0]
	for name := range fields(h) {
		if !drop.drops(name) || slices.ContainsFunc(names[:n], func(seen []byte) bool { return bytes.EqualFold(seen, name) }) {
			continue // one line of a name already taken
		}
		if n == len(names) {
			break
		}
		if len(b)+len(name) > len(buf) {
			b = nil // the rest on the heap (long names)
		}
		start := len(b)
		b = append(b, name...)
		names[n] = b[start:]
		n++
	}
	for _, name := range names[:n] {
		h.DelBytes(name) // every line of it
	}
}

// clientBody reads a streamed request body for the forward: past left
// bytes it fails (a chunked body over max_body_bytes), and a read error is
// marked upstream.ErrClientBody, the client's doing.
type clientBody struct {
	r    io.Reader
	left int
	over bool
}

// errBodyTooLarge ends a chunked body past max_body_bytes.
var errBodyTooLarge = errors.New("request body exceeds server.max_body_bytes")

// problemBodyCut answers a request whose client broke off its body.
var problemBodyCut = badRequest("the request body ended before its length")

func (c *clientBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.left -= n; c.left < 0 {
		c.over = true
		return 0, fmt.Errorf("%w: %w", upstream.ErrClientBody, errBodyTooLarge)
	}
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("%w: %w", upstream.ErrClientBody, err)
	}
	return n, err
}
