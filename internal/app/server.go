package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/internal/admin"
	"github.com/l1gw/l1gw/internal/gateway"
	"github.com/l1gw/l1gw/internal/logsample"
	"github.com/l1gw/l1gw/internal/tlsterm"
)

// Server runs the proxy and admin listeners.
type Server struct {
	// maxConns and perIP cap the proxy listener's connections; v6bits is
	// the IPv6 network its cap per peer counts as one peer (the admin
	// listener's counts a /64, adminV6Bits).
	maxConns, perIP, v6bits int
	// tls terminates TLS on the proxy listener; nil serves plain HTTP.
	tls   *tls.Config
	proxy *fasthttp.Server
	admin *fasthttp.Server
	// tunnels ends the proxy's tunnels at shutdown, which fasthttp does
	// not wait for once hijacked.
	tunnels interface {
		EndTunnels(context.Context) (ended, left int)
	}
	ready func(bool)
	grace time.Duration
	log   *slog.Logger
}

// NewServer sets every fasthttp timeout and size limit from cfg (fasthttp's
// own defaults are unlimited) and wraps the proxy handler in the recoverer
// and the duration histogram. The proxy streams request bodies: it decides
// on the headers (and answers Expect: 100-continue only once admitted), and
// reads at most 8 KiB of a body before that.
func NewServer(cfg config.Server, gw *gateway.Gateway, adm *admin.Admin, certs *tlsterm.Store, log *slog.Logger) *Server {
	proxy := newFastServer(cfg, gw.Handler(log), log)
	proxy.StreamRequestBody = true
	proxy.ExpectHandler = gw.ExpectHandler(log)
	var tlsConfig *tls.Config
	if certs != nil {
		tlsConfig = certs.Config()
	}
	return &Server{
		maxConns: cfg.MaxConns, perIP: cfg.MaxConnsPerIP, v6bits: cfg.MaxConnsPerIPIPv6Prefix, tls: tlsConfig,
		proxy:   proxy,
		tunnels: gw,
		admin:   adminServer(cfg, adm, log),
		ready:   adm.SetReady,
		grace:   cfg.ShutdownGrace,
		log:     log,
	}
}

// adminBodyBytes caps a request body on the admin listener, where no
// call needs more than a JSON object of a few fields.
const adminBodyBytes = 64 << 10

// adminConns caps the admin listener's open connections (probes,
// scrapes, operators), idle keep-alive ones included, and adminConnsPerIP
// those of one client address (an IPv6 one by its /64, adminV6Bits):
// past them a connection is
// answered 503 (429 for one address's) and closed, so a client on the
// admin network can neither hold a goroutine and buffers per connection
// without bound nor take every connection from the kubelet's probes.
// (Not fasthttp's MaxConnsPerIP: its connections race with Shutdown
// under -race, fasthttp v1.74.0.)
//
// adminV6Bits stays a /64 whatever server.max_conns_per_ip_ipv6_prefix
// says: a wider network set for the proxy's clients would put the
// probes, the scrapes and the operators of one cluster network under one
// cap of 64.
const (
	adminConns      = 1024
	adminConnsPerIP = 64
	adminV6Bits     = 64
)

// adminServer is the admin listener's server: the proxy's settings, but a
// small body cap, read before the token is checked.
func adminServer(cfg config.Server, adm *admin.Admin, log *slog.Logger) *fasthttp.Server {
	s := newFastServer(cfg, gateway.Recover(adm.Handler(), log), log)
	s.MaxRequestBodySize = min(adminBodyBytes, cfg.MaxBodyBytes)
	bodyCap := "the admin API's cap, 64 KiB"
	if cfg.MaxBodyBytes < adminBodyBytes {
		bodyCap = "server.max_body_bytes"
	}
	s.ErrorHandler = gateway.AdminServerError(bodyCap)
	return s
}

func newFastServer(cfg config.Server, h fasthttp.RequestHandler, log *slog.Logger) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                      h,
		ErrorHandler:                 gateway.ServerError,
		ReadTimeout:                  cfg.ReadTimeout,
		WriteTimeout:                 cfg.WriteTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		ReadBufferSize:               cfg.MaxHeaderBytes,
		MaxRequestBodySize:           cfg.MaxBodyBytes,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		TCPKeepalive:                 true,
		SecureErrorLogMessage:        true, // never log request bytes: they hold API keys
		Logger:                       newFastLogger(log),
	}
}

// fastLogInterval is the least time between two lines of fasthttp's.
const fastLogInterval = 10 * time.Second

// fastLogger routes fasthttp's own messages, mostly about requests it
// could not parse, to slog: one sample line per fastLogInterval, with the
// number of messages dropped before it (l1gw_malformed_requests_total
// counts them all), and with every quoted string in it replaced, since
// fasthttp quotes request bytes (an invalid header value: an API key with
// a control byte) even with SecureErrorLogMessage.
type fastLogger struct {
	log    *slog.Logger
	sample *logsample.Every
}

func newFastLogger(log *slog.Logger) *fastLogger {
	return &fastLogger{log: log, sample: logsample.New(fastLogInterval)}
}

// Printf logs a sample; it formats nothing it drops.
func (l *fastLogger) Printf(format string, args ...any) {
	dropped, ok := l.sample.Allow()
	if !ok {
		return
	}
	l.log.Warn("fasthttp", "detail", redactQuoted(fmt.Sprintf(format, args...)), "dropped_before", dropped)
}

// quoted matches a Go-quoted string (fmt's %q).
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// redactQuoted replaces every quoted string in msg with "…".
func redactQuoted(msg string) string { return quoted.ReplaceAllLiteralString(msg, `"…"`) }

// Serve serves both listeners until ctx ends, then stops accepting, lets
// in-flight requests finish for up to the shutdown grace, and returns nil.
// It returns early with an error when a listener fails.
func (s *Server) Serve(ctx context.Context, proxyLn, adminLn net.Listener) error {
	errc := make(chan error, 2)
	limited := limitConns(proxyLn, s.maxConns, s.perIP, s.v6bits, proxyConns)
	var ln net.Listener = limited
	if s.tls != nil {
		// Refused before the handshake, which would hold the accept
		// loop: closed without an answer.
		limited.quiet = true
		ln = tls.NewListener(ln, s.tls)
	}
	adminLimited := limitConns(adminLn, adminConns, adminConnsPerIP, adminV6Bits, adminConnsMetrics)
	go func() { errc <- s.proxy.Serve(ln) }()
	go func() { errc <- s.admin.Serve(adminLimited) }()
	s.ready(true)
	s.log.Info("serving", "proxy", proxyLn.Addr().String(), "admin", adminLn.Addr().String())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		serveErr = fmt.Errorf("listener failed: %w", serveErr)
	}
	s.ready(false)
	s.log.Info("shutting down", "grace", s.grace.String())
	graceCtx, cancel := context.WithTimeout(context.Background(), s.grace)
	defer cancel()
	if err := s.proxy.ShutdownWithContext(graceCtx); err != nil {
		s.log.Warn("shutdown grace over; connections still open were cut", "err", err.Error(), "open", s.proxy.GetOpenConnectionsCount())
	}
	if ended, left := s.tunnels.EndTunnels(graceCtx); ended > 0 {
		s.log.Warn("shutdown grace over; tunnels still open were ended", "ended", ended, "not_done", left)
	}
	if err := s.admin.ShutdownWithContext(graceCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("admin shutdown", "err", err.Error())
	}
	s.log.Info("stopped")
	return serveErr
}
