package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// forward sends the request upstream and leaves its answer, or a problem
// for a failed forward, in ctx.Response. A body is streamed through as the
// client sends it; a chunked one is cut at max_body_bytes (413); one the
// client breaks off is a 400, not the target's failure.
func (g *Gateway) forward(ctx *fasthttp.RequestCtx, pool *upstream.Pool, t *tenants.Tenant, keyIn keyPlaces, reqID []byte) {
	h := &ctx.Request.Header
	closeAfter := h.ConnectionClose()
	body := hasBody(h)
	if !body && ctx.Request.IsBodyStream() {
		// An empty stream: without it the request stays retryable.
		_ = ctx.Request.CloseBodyStream()
	}
	g.prepare(ctx, t, keyIn, reqID)

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
		case errors.Is(err, upstream.ErrClientBody):
			writeProblem(ctx, problemBodyCut) // the client is likely gone
		default:
			g.log.Warn("forward failed", "err", err.Error(), "upstream", pool.Name, "tenant", t.ID)
			writeProblem(ctx, upstreamProblem(status))
		}
		// What of the body the forward did not read is still on the wire.
		closeAfter = closeAfter || body
	} else {
		upstream.StripResponseHopByHop(&ctx.Response.Header)
		if s, ok := ctx.Response.BodyStream().(upstream.Streamed); ok && g.writeTimeout > 0 {
			s.KeepWriting(ctx.Conn(), g.writeTimeout)
		}
	}
	if closeAfter {
		ctx.Response.SetConnectionClose()
	}
}

// underscored are the headers the gateway sets, spelt with underscores.
var underscored = []string{"X_L1gw_Tenant", "X_Forwarded_For", "X_Forwarded_Proto", "X_Forwarded_Host", "X_Request_Id"}

// underscoreName: a header name in the raw header block has an '_'. It
// spares the five deletions below one pass over the headers each, for the
// requests (nearly all) without one.
func underscoreName(raw []byte) bool {
	return anyHeaderName(raw, func(name []byte) bool { return bytes.IndexByte(name, '_') >= 0 })
}

// prepare makes the request the upstream gets: hop-by-hop fields out,
// the request ID, the key hidden, the tenant, the X-Forwarded-* set.
func (g *Gateway) prepare(ctx *fasthttp.RequestCtx, t *tenants.Tenant, keyIn keyPlaces, reqID []byte) {
	h := &ctx.Request.Header
	upstream.StripRequestHopByHop(h)
	upstream.Own(h, hdrRequestID, reqID) // even if Connection named it
	if g.hideKey {
		h.Del(g.keyHeader)
		if keyIn&keyInAuth != 0 {
			h.DelBytes(hdrAuthorization)
		}
		if keyIn&keyInQuery != 0 {
			g.stripKeyQuery(ctx.URI())
		}
	}
	if raw := h.RawHeaders(); len(raw) == 0 || underscoreName(raw) {
		for _, name := range underscored {
			// An upstream that reads X_L1gw_Tenant as X-L1gw-Tenant (CGI's
			// HTTP_X_L1GW_TENANT) must not get the client's.
			h.Del(name)
		}
	}
	h.Del(hdrTenant) // every copy the client sent
	// The deletions above moved fields, and a trusted proxy's
	// X-Forwarded-For lines are read next, in their order.
	upstream.RestoreOrder(h)
	h.Set(hdrTenant, t.ID)
	upstream.SetForwarded(h, upstream.Forwarded{ClientIP: ctx.RemoteIP(), TLS: ctx.IsTLS(), Trust: g.trusted.Peer(ctx.RemoteIP())})
	upstream.RestoreOrder(h) // and so did SetForwarded's
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
var problemBodyCut = problem{fasthttp.StatusBadRequest, typeBlank, "Bad Request", "the request body ended before its length"}

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
