package app

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/l1gw/l1gw/internal/rawio"
)

// connMetrics are one listener's connection metrics.
type connMetrics struct {
	open                  atomic.Int64
	rejectedMax, rejectIP *metrics.Counter
}

// newConnMetrics registers the metrics of a listener whose metric names
// begin with prefix: l1gw_connections_open and
// l1gw_connections_rejected_total{reason} for the proxy's.
func newConnMetrics(prefix string) *connMetrics {
	m := &connMetrics{
		rejectedMax: metrics.NewCounter(prefix + `_rejected_total{reason="max_conns"}`),
		rejectIP:    metrics.NewCounter(prefix + `_rejected_total{reason="max_conns_per_ip"}`),
	}
	metrics.NewGauge(prefix+`_open`, func() float64 { return float64(m.open.Load()) })
	return m
}

// The listeners' connection metrics; accept errors are counted for both
// together.
var (
	proxyConns        = newConnMetrics("l1gw_connections")
	adminConnsMetrics = newConnMetrics("l1gw_admin_connections")
	connsAcceptErrors = metrics.NewCounter(`l1gw_accept_errors_total`)
)

// Answers to a connection refused at accept, written without waiting:
// a problem (RFC 9457) with Retry-After, as the gateway's other sheds
// are, in one small write.
var (
	refusedMax = refusal(503, "Service Unavailable",
		"the listener holds as many open connections as it takes: try again shortly")
	refusedPerIP = refusal(429, "Too Many Requests",
		"this client holds as many open connections as one client may: reuse one, close one, or try again shortly")
)

// refusal is the whole answer, status line to body, that refuses a
// connection with status.
func refusal(status int, title, detail string) []byte {
	body := `{"type":"about:blank","title":"` + title + `","status":` + strconv.Itoa(status) + `,"detail":"` + detail + `"}` + "\n"
	return []byte("HTTP/1.1 " + strconv.Itoa(status) + " " + title + "\r\nConnection: close\r\n" +
		"Content-Type: application/problem+json\r\nRetry-After: 1\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

// connLimit is a listener that caps the open connections, in all
// (server.max_conns on the proxy listener) and per client (server.
// max_conns_per_ip, 0: no cap): an IPv4 address, or an IPv6 network of
// v6bits (server.max_conns_per_ip_ipv6_prefix, a /64 by default, which
// one host is commonly given whole). It counts what it refuses in m, and
// keeps TCP keep-alive on, as fasthttp would on a bare TCP listener.
type connLimit struct {
	net.Listener
	max, perIP int
	v6bits     int
	m          *connMetrics
	// quiet closes a refused connection without an answer: under TLS,
	// where a plain one would reach the client as a broken handshake.
	quiet bool

	mu   sync.Mutex
	open int
	byIP map[netip.Addr]int
}

// limitConns caps ln's connections: max in all, perIP (0: no cap) from
// one peer, an IPv6 peer counted by its network of v6bits (1 to 128).
func limitConns(ln net.Listener, max, perIP, v6bits int, m *connMetrics) *connLimit {
	return &connLimit{Listener: ln, max: max, perIP: perIP, v6bits: v6bits, m: m, byIP: map[netip.Addr]int{}}
}

// Accept returns the next connection within the caps; one past them is
// answered (503 or 429) and closed, and Accept goes on.
func (l *connLimit) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !transient(err) {
				return nil, err
			}
			// Out of file descriptors or buffers: fasthttp would stop
			// serving. Wait, as net/http does, and accept again.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			connsAcceptErrors.Inc()
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		ip := remoteAddr(c, l.v6bits)
		refusal := l.admit(ip)
		if refusal == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetKeepAlive(true)
				tc.SetKeepAlivePeriod(3 * time.Minute)
			}
			l.m.open.Add(1)
			return &limitedConn{Conn: rawio.Wrap(c), l: l, ip: ip}, nil
		}
		if !l.quiet {
			// The refusal fits in the socket buffer: the write does not wait.
			c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			c.Write(refusal)
		}
		c.Close()
	}
}

// transient: an accept error that passes (EMFILE, ENFILE, ENOBUFS,
// ENOMEM, ECONNABORTED), not a closed listener.
func transient(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// admit takes a slot for ip; it returns the refusal when there is none.
func (l *connLimit) admit(ip netip.Addr) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.max {
		l.m.rejectedMax.Inc()
		return refusedMax
	}
	if l.perIP > 0 && l.byIP[ip] >= l.perIP {
		l.m.rejectIP.Inc()
		return refusedPerIP
	}
	l.open++
	l.byIP[ip]++
	return nil
}

func (l *connLimit) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if n := l.byIP[ip] - 1; n > 0 {
		l.byIP[ip] = n
	} else {
		delete(l.byIP, ip)
	}
}

// remoteAddr is the client c counts as: its IPv4 address, or its IPv6
// address's network of v6bits (the first address of the network).
func remoteAddr(c net.Conn, v6bits int) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			ip = ip.Unmap()
			if ip.Is6() {
				p, err := ip.Prefix(v6bits)
				if err != nil { // v6bits out of 0-128: config refuses it
					return ip
				}
				return p.Addr()
			}
			return ip
		}
	}
	return netip.Addr{}
}

// limitedConn gives its slot back once, at its first Close.
type limitedConn struct {
	net.Conn
	l    *connLimit
	ip   netip.Addr
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.release(c.ip)
		c.l.m.open.Add(-1)
	})
	return c.Conn.Close()
}
