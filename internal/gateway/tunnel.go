package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/tenants"
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

// TunnelLimits bound an upgraded connection.
type TunnelLimits struct {
	// Idle closes a tunnel when neither side has sent anything this long.
	Idle time.Duration
	// Max closes a tunnel this long after it opened.
	Max time.Duration
}

// DefaultTunnelLimits are server.tunnel_idle_timeout and
// server.tunnel_max_duration's defaults.
var DefaultTunnelLimits = TunnelLimits{Idle: time.Minute, Max: time.Hour}

// upgradeOf is the Upgrade header's value when the request asks for an
// upgrade (Connection names it); nil otherwise.
func upgradeOf(h *fasthttp.RequestHeader) []byte {
	up := h.PeekBytes(hdrUpgrade)
	if len(up) == 0 || !h.IsGet() {
		return nil
	}
	for _, v := range h.PeekAll(fasthttp.HeaderConnection) {
		for _, tok := range bytes.Split(v, []byte{','}) {
			if bytes.EqualFold(bytes.TrimSpace(tok), tokenUpgrade) {
				return up
			}
		}
	}
	return nil
}

// tunnel serves an admitted upgrade request: it sends the request head to
// a target, and on its 101 answers the client with it and joins the two
// connections until either ends, the tunnel is idle too long or too old.
// Any other answer is passed on as it came. It was decided once, as the
// request it started as.
func (g *Gateway) tunnel(ctx *fasthttp.RequestCtx, pool *upstream.Pool, t *tenants.Tenant, keyInAuth bool, reqID, proto []byte) {
	h := &ctx.Request.Header
	proto = append([]byte(nil), proto...) // stripping reuses its storage
	g.prepare(ctx, t, keyInAuth, reqID)
	h.SetCanonical(hdrConnection, valueUpgrade)
	h.SetCanonical(hdrUpgrade, proto)
	up, err := pool.DialTunnel()
	if err != nil {
		g.log.Warn("upgrade failed", "err", err.Error(), "upstream", pool.Name, "tenant", t.ID)
		writeProblem(ctx, upstreamProblem(fasthttp.StatusBadGateway))
		return
	}
	up.SetDeadline(time.Now().Add(g.tunnelLimits.Idle))
	br := bufio.NewReader(up)
	_, err = up.Write(h.Header())
	if err == nil {
		err = ctx.Response.Header.Read(br)
	}
	if err != nil {
		up.Close()
		g.log.Warn("upgrade failed", "err", err.Error(), "upstream", pool.Name, "tenant", t.ID)
		writeProblem(ctx, upstreamProblem(fasthttp.StatusBadGateway))
		return
	}
	if ctx.Response.StatusCode() != fasthttp.StatusSwitchingProtocols {
		// Refused: its body, if any, is read as any answer's would be.
		err = ctx.Response.ReadBody(br, 1<<20)
		up.Close()
		if err != nil {
			writeProblem(ctx, upstreamProblem(fasthttp.StatusBadGateway))
		}
		ctx.SetConnectionClose()
		return
	}
	limits := g.tunnelLimits
	ctx.Hijack(func(client net.Conn) {
		join(client, up, br, limits)
	})
}

// join copies both ways until one side ends or fails, the tunnel is idle
// for limits.Idle or open for limits.Max; then it closes both.
func join(client, up net.Conn, upr io.Reader, limits TunnelLimits) {
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
			client.Close()
			up.Close()
		})
	}
	max := time.AfterFunc(limits.Max, end)
	defer max.Stop()
	go pump(up, upr, client, &last, limits.Idle, end)
	pump(client, client, up, &last, limits.Idle, end)
	<-done
}

// pump copies src to dst; each read waits at most idle past the tunnel's
// last byte either way.
func pump(srcConn net.Conn, src io.Reader, dst net.Conn, last *atomic.Int64, idle time.Duration, end func()) {
	defer end()
	buf := make([]byte, 32<<10)
	for {
		srcConn.SetReadDeadline(time.Unix(0, last.Load()).Add(idle))
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < idle {
				continue // the other way moved meanwhile
			}
			return
		}
	}
}
