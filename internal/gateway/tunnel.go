package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/upstream"
)

// Tunnel metrics: upgraded connections open now, and in all.
var (
	tunnelsOpen  atomic.Int64
	tunnelsTotal = metrics.NewCounter(`l1gw_tunnels_total`)
	_            = metrics.NewGauge(`l1gw_tunnels_open`, func() float64 { return float64(tunnelsOpen.Load()) })
)

var (
	hdrUpgrade    = []byte("Upgrade")
	tokenUpgrade  = []byte("upgrade")
	valueUpgrade  = []byte("Upgrade")
	hdrConnection = []byte("Connection")
)

// TunnelLimits bound upgraded connections: what they may carry, how
// long.
type TunnelLimits struct {
	// Idle closes a tunnel when neither side has sent anything this long.
	Idle time.Duration
	// Max closes a tunnel this long after it opened.
	Max time.Duration
	// Protocols are the protocol names an upgrade may switch to; nil is
	// DefaultTunnelLimits', empty none. A tunnel carries what it carries
	// past the limits and the headers the gateway sets: h2c would carry
	// HTTP/2 requests to the upstream so, and config refuses it.
	Protocols []string
}

// DefaultTunnelLimits are server.tunnel_idle_timeout,
// server.tunnel_max_duration and server.tunnel_protocols' defaults.
var DefaultTunnelLimits = TunnelLimits{Idle: time.Minute, Max: time.Hour, Protocols: []string{"websocket"}}

// upgradeOf is the Upgrade header's protocols that allowed names, comma
// separated, when the request asks for an upgrade (Connection names it)
// to at least one of them; nil otherwise, and the request is forwarded as
// any other, without its Upgrade (a hop-by-hop field). A protocol is
// named without its version ("websocket" allows "WebSocket/13").
func upgradeOf(h *fasthttp.RequestHeader, allowed [][]byte) []byte {
	up := h.PeekBytes(hdrUpgrade)
	if len(up) == 0 || !h.IsGet() || !connectionNames(h, tokenUpgrade) {
		return nil
	}
	var out []byte
	for tok := range bytes.SplitSeq(up, []byte{','}) {
		tok = bytes.TrimSpace(tok)
		name, _, _ := bytes.Cut(tok, []byte{'/'})
		if len(name) == 0 || !slices.ContainsFunc(allowed, func(a []byte) bool { return bytes.EqualFold(a, name) }) {
			continue
		}
		if out != nil {
			out = append(out, ", "...)
		}
		out = append(out, tok...)
	}
	return out
}

// connectionNames reports whether a Connection field of h names tok.
func connectionNames(h *fasthttp.RequestHeader, tok []byte) bool {
	for _, v := range h.PeekAll(fasthttp.HeaderConnection) {
		for t := range bytes.SplitSeq(v, []byte{','}) {
			if bytes.EqualFold(bytes.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}

// problemBadUpgrade refuses an upgrade that cannot be tunnelled cleanly.
var problemBadUpgrade = badRequest("an upgrade request must be HTTP/1.1 and carry no body")

// hijackWait bounds how long an upstream connection waits for fasthttp to
// hand over the client's: it does not when it closes the connection
// instead (a shutdown), and then nothing else would close it.
const hijackWait = 5 * time.Second

// tunnel serves an admitted upgrade request and finishes its answer: it
// sends the request head to a target, and on its 101 answers the client
// with it and joins the two connections until either ends, the tunnel is
// idle too long or too old. Any other answer is passed on as it came, and
// the connection closed. It was decided once, as the request it started
// as.
func (g *Gateway) tunnel(ctx *fasthttp.RequestCtx, pool *upstream.Pool, a *admission, proto []byte) {
	defer g.finish(ctx, a)
	// A tunnel holds its leases until it closes; one that never opens,
	// until the handler returns.
	release := func() {}
	var l *lease // renewed while the tunnel is open
	if a.v.HoldsLeases() {
		l = a.lease()
		release = g.releaser(l)
	}
	handedOver := false
	defer func() {
		if !handedOver {
			release()
		}
	}()
	h := &ctx.Request.Header
	if hasBody(h) || !h.IsHTTP11() {
		// A body would be lost or read as the tunnel's first bytes;
		// HTTP/1.0 has no upgrade (RFC 9110 §7.8).
		writeProblem(ctx, problemBadUpgrade)
		ctx.SetConnectionClose()
		return
	}
	proto = append([]byte(nil), proto...) // stripping reuses its storage
	owner := g.ownerOf(ctx, a)            // before prepare hides the key
	g.prepare(ctx, a)
	// The target as the router saw it: origin form, the URI's host, and
	// its path as sent (a forward's pool writes it so too).
	u := ctx.URI()
	u.DisablePathNormalizing = true
	h.SetRequestURIBytes(u.RequestURI())
	h.SetHostBytes(u.Host())
	h.SetCanonical(hdrConnection, valueUpgrade)
	h.SetCanonical(hdrUpgrade, proto)
	up, target, err := pool.DialTunnel()
	owner.target = target
	var br *bufio.Reader
	if err == nil {
		// The handshake is one request: the upstream answers it within
		// its timeout, as any other.
		up.SetDeadline(time.Now().Add(min(pool.Timeout(), g.tunnelLimits.Idle)))
		br = bufio.NewReader(up)
		if _, err = up.Write(h.Header()); err == nil {
			err = upstream.ReadHead(br, &ctx.Response.Header) // a 103 first is no answer
		}
		if err != nil {
			up.Close()
			pool.CountError(err)
		}
	}
	if err != nil {
		g.upstreamFailed("upgrade failed", err.Error(), pool, a)
		status := fasthttp.StatusBadGateway
		if upstream.IsTimeout(err) {
			status = fasthttp.StatusGatewayTimeout
		}
		writeProblem(ctx, upstreamProblem(status))
		ctx.SetConnectionClose()
		return
	}
	if ctx.Response.StatusCode() != fasthttp.StatusSwitchingProtocols {
		// Refused: its body, if any, is read as any answer's would be.
		err = ctx.Response.ReadBody(br, 1<<20)
		up.Close()
		if err != nil {
			pool.CountError(err)
			writeProblem(ctx, upstreamProblem(fasthttp.StatusBadGateway))
		} else {
			upstream.CleanResponse(&ctx.Response.Header, rateField)
		}
		ctx.SetConnectionClose()
		return
	}
	// RFC 9110 §7.8: a 101 names the protocol switched to, one the client
	// asked for; anything else is no upgrade the client can speak.
	switched := append([]byte(nil), ctx.Response.Header.PeekBytes(hdrUpgrade)...)
	if !offered(proto, switched) {
		up.Close()
		err := fmt.Errorf("a 101 switching to %q; the client asked for %q", switched, proto)
		pool.CountError(err) // other
		g.upstreamFailed("upgrade failed", err.Error(), pool, a)
		writeProblem(ctx, upstreamProblem(fasthttp.StatusBadGateway))
		ctx.SetConnectionClose()
		return
	}
	// The 101's fields as any answer's: no hop-by-hop field of the
	// upstream's, no copy of the rate-limit fields finish sets; then the
	// two the switch needs.
	upstream.CleanResponse(&ctx.Response.Header, rateField)
	ctx.Response.Header.SetCanonical(hdrConnection, valueUpgrade)
	ctx.Response.Header.SetCanonical(hdrUpgrade, switched)
	up.SetDeadline(time.Time{}) // join sets its own
	// The 101 goes out from the hijack handler, with the headers finish
	// adds, so that an upstream connection is closed whatever happens.
	var state atomic.Int32 // 0 waiting, 1 handed over, 2 given up
	tunnels := &g.tunnels
	tunnels.start() // shutdown waits for it, until its leases are given back
	time.AfterFunc(hijackWait, func() {
		if state.CompareAndSwap(0, 2) {
			up.Close()
			release() // the hijack handler will not run
			tunnels.finish()
		}
	})
	limits := g.tunnelLimits
	ctx.HijackSetNoResponse(true)
	handedOver = true
	ctx.Hijack(func(client net.Conn) {
		if !state.CompareAndSwap(0, 1) {
			return // given up: released already
		}
		defer tunnels.finish()
		defer release()
		client.SetWriteDeadline(time.Now().Add(limits.Idle))
		if _, err := client.Write(ctx.Response.Header.Header()); err != nil {
			up.Close()
			return
		}
		join(client, up, br, limits, tunnels, func(done <-chan struct{}, end func()) { g.watch(owner, l, done, end) })
	})
}

// offered reports whether protocol, the Upgrade of a 101, is one of the
// comma-separated protocols the client's Upgrade asked for (RFC 9110
// §7.8), case aside.
func offered(asked, protocol []byte) bool {
	protocol = bytes.TrimSpace(protocol)
	if len(protocol) == 0 {
		return false
	}
	for tok := range bytes.SplitSeq(asked, []byte{','}) {
		if bytes.EqualFold(bytes.TrimSpace(tok), protocol) {
			return true
		}
	}
	return false
}

// join copies both ways until one side ends or fails, the tunnel is idle
// for limits.Idle or open for limits.Max; then it closes both. watch, if
// not nil, runs meanwhile, until the tunnel ends (done), which it may
// end.
func join(client, up net.Conn, upr io.Reader, limits TunnelLimits, tunnels *tunnelSet, watch func(done <-chan struct{}, end func())) {
	tunnelsOpen.Add(1)
	tunnelsTotal.Inc()
	defer tunnelsOpen.Add(-1)
	var last atomic.Int64 // the last byte either way, Unix ns
	last.Store(time.Now().UnixNano())
	var once sync.Once
	done := make(chan struct{})
	end := func() {
		once.Do(func() {
			close(done)
			// A hijacked connection's Close is fasthttp's to do after the
			// handler: a deadline in the past ends its pending read now.
			client.SetDeadline(time.Unix(1, 0))
			client.Close()
			up.Close()
		})
	}
	defer tunnels.joined(end)()
	max := time.AfterFunc(limits.Max, end)
	defer max.Stop()
	if watch != nil {
		// Waited for: the release after join reads the lease it renews.
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			watch(done, end)
		}()
		defer func() { <-watched }()
	}
	go pump(up, upr, client, &last, limits.Idle, done, end)
	pump(client, client, up, &last, limits.Idle, done, end)
	<-done
}

// pump copies src to dst until the tunnel ends (done); each read waits
// at most idle past the tunnel's last byte either way.
func pump(srcConn net.Conn, src io.Reader, dst net.Conn, last *atomic.Int64, idle time.Duration, done <-chan struct{}, end func()) {
	defer end()
	buf := make([]byte, 32<<10)
	for {
		srcConn.SetReadDeadline(time.Unix(0, last.Load()).Add(idle))
		select {
		case <-done:
			// Ended before this read: end's deadline in the past may be
			// the one just replaced.
			return
		default:
		}
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			dst.SetWriteDeadline(time.Now().Add(idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			var ne net.Error
			select {
			case <-done: // ended the other way
				return
			default:
			}
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < idle {
				continue // the other way moved meanwhile
			}
			return
		}
	}
}
