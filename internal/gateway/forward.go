package gateway

import (
	"errors"
	"io"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/tenants"
	"github.com/l1gw/l1gw/upstream"
)

// forward sends the request upstream and leaves its answer, or a problem
// for a failed forward, in ctx.Response. A body is streamed through as the
// client sends it; a chunked one is cut at max_body_bytes (413).
func (g *Gateway) forward(ctx *fasthttp.RequestCtx, pool *upstream.Pool, t *tenants.Tenant, keyInAuth bool, reqID []byte) {
	h := &ctx.Request.Header
	closeAfter := h.ConnectionClose()
	body := hasBody(h)
	if !body && ctx.Request.IsBodyStream() {
		// An empty stream: without it the request stays retryable.
		_ = ctx.Request.CloseBodyStream()
	}
	g.prepare(ctx, t, keyInAuth, reqID)

	req, cut := &ctx.Request, (*cappedBody)(nil)
	if h.ContentLength() == -1 && ctx.Request.IsBodyStream() {
		// Chunked: its length is known only at its end.
		out := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(out)
		ctx.Request.CopyTo(out)
		cut = &cappedBody{r: ctx.RequestBodyStream(), left: g.maxBody}
		out.SetBodyStream(cut, -1)
		req = out
	}
	if err := pool.Forward(req, &ctx.Response); err != nil {
		var ue *upstream.Error
		status := fasthttp.StatusBadGateway
		if errors.As(err, &ue) {
			status = ue.Status()
		}
		if cut != nil && cut.over {
			writeProblem(ctx, problemBodySize)
		} else {
			g.log.Warn("forward failed", "err", err.Error(), "upstream", pool.Name, "tenant", t.ID)
			writeProblem(ctx, upstreamProblem(status))
		}
		// What of the body the forward did not read is still on the wire.
		closeAfter = closeAfter || body
	} else {
		upstream.StripResponseHopByHop(&ctx.Response.Header)
	}
	if closeAfter {
		ctx.Response.SetConnectionClose()
	}
}

// underscored are the headers the gateway sets, spelt with underscores.
var underscored = []string{"X_L1gw_Tenant", "X_Forwarded_For", "X_Forwarded_Proto", "X_Forwarded_Host", "X_Request_Id"}

// prepare makes the request the upstream gets: hop-by-hop fields out,
// the request ID, the key hidden, the tenant, the X-Forwarded-* set.
func (g *Gateway) prepare(ctx *fasthttp.RequestCtx, t *tenants.Tenant, keyInAuth bool, reqID []byte) {
	h := &ctx.Request.Header
	upstream.StripRequestHopByHop(h)
	upstream.Own(h, hdrRequestID, reqID) // even if Connection named it
	if g.hideKey {
		h.Del(g.keyHeader)
		if keyInAuth {
			h.DelBytes(hdrAuthorization)
		}
	}
	for _, name := range underscored {
		// An upstream that reads X_L1gw_Tenant as X-L1gw-Tenant (CGI's
		// HTTP_X_L1GW_TENANT) must not get the client's.
		h.Del(name)
	}
	h.Del(hdrTenant) // every copy the client sent
	h.Set(hdrTenant, t.ID)
	upstream.SetForwarded(h, upstream.Forwarded{ClientIP: ctx.RemoteIP(), TLS: ctx.IsTLS(), Trust: g.trusted.Peer(ctx.RemoteIP())})
}

// cappedBody reads a streamed request body and fails past left bytes.
type cappedBody struct {
	r    io.Reader
	left int
	over bool
}

// errBodyTooLarge ends a chunked body past max_body_bytes.
var errBodyTooLarge = errors.New("request body exceeds server.max_body_bytes")

func (c *cappedBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.left -= n; c.left < 0 {
		c.over = true
		return 0, errBodyTooLarge
	}
	return n, err
}
