package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/limiter"
)

// Pool is one upstream: its targets, balanced by fewest pending requests
// (round-robin among equals), skipping targets that fail health checks.
type Pool struct {
	// Name is the upstream's name in the config.
	Name    string
	spec    Spec
	targets []*target
	next    atomic.Uint32
	errs    errorCounters
	// ejections is l1gw_upstream_ejections_total{upstream}.
	ejections *metrics.Counter
	log       *slog.Logger
	// shared are the upstream's shared limits, scoped.
	shared []limiter.Rule
}

type target struct {
	url    string
	scheme []byte // "http" or "https": fasthttp's HostClient wants the request's to match

	hc      *fasthttp.HostClient
	healthy atomic.Bool
	// Passive ejection: connection failures in a row, ejections since the
	// last success, and the end of the current ejection (Unix ns).
	fails     atomic.Int32
	ejections atomic.Int32
	until     atomic.Int64
}

// ejected says whether t is out of rotation at now (Unix ns).
func (t *target) ejected(now int64) bool { return now < t.until.Load() }

// errorCounters are the pool's l1gw_upstream_errors_total handles by kind.
type errorCounters map[ErrorKind]*metrics.Counter

func newPool(name string, spec Spec, log *slog.Logger) (*Pool, error) {
	p := &Pool{Name: name, spec: spec, log: log, errs: errorCounters{}, shared: scoped(SharedScope(name), spec.Limits, 0, 0),
		ejections: metrics.GetOrCreateCounter(fmt.Sprintf(`l1gw_upstream_ejections_total{upstream=%q}`, name))}
	metrics.GetOrCreateGauge(fmt.Sprintf(`l1gw_upstream_ejected_targets{upstream=%q}`, name), func() float64 {
		if cur, ok := live.Load(name); ok {
			return float64(cur.(*Pool).Ejected())
		}
		return 0
	})
	for _, k := range errorKinds {
		p.errs[k] = metrics.GetOrCreateCounter(fmt.Sprintf(`l1gw_upstream_errors_total{upstream=%q,kind=%q}`, name, k))
	}
	tlsConfig, err := spec.TLS.config()
	if err != nil {
		return nil, fmt.Errorf("upstream %s: tls: %w", name, err)
	}
	transport := &streamTransport{maxBody: spec.MaxResponseBytes, errs: p.errs,
		stale: metrics.GetOrCreateCounter(fmt.Sprintf(`l1gw_upstream_stale_conns_total{upstream=%q}`, name))}
	for _, raw := range spec.Targets {
		addr, tls, err := parseTarget(raw)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", name, err)
		}
		scheme := schemeHTTP
		if tls {
			scheme = schemeHTTPS
		}
		t := &target{url: raw, scheme: scheme, hc: &fasthttp.HostClient{
			Addr:                          addr,
			IsTLS:                         tls,
			TLSConfig:                     tlsConfig,
			NoDefaultUserAgentHeader:      true, // and no Name: a client that sent no User-Agent gets none added
			DisablePathNormalizing:        true,
			DisableHeaderNamesNormalizing: false,
			MaxConns:                      spec.MaxConnsPerTarget,
			MaxConnWaitTimeout:            0, // fail fast with ErrNoFreeConns: never queue behind a full pool
			MaxIdleConnDuration:           spec.IdleConnTimeout,
			ReadTimeout:                   spec.Timeout,
			WriteTimeout:                  spec.Timeout,
			MaxResponseBodySize:           spec.MaxResponseBytes, // streamTransport enforces it
			Transport:                     transport,
			MaxIdemponentCallAttempts:     1, // retries are decided here, across targets
			Dial:                          dialer(spec.DialTimeout),
			SecureErrorLogMessage:         true, // errors are logged: keep request bytes out of them
		}}
		t.healthy.Store(true)
		p.targets = append(p.targets, t)
	}
	return p, nil
}

func dialer(timeout time.Duration) fasthttp.DialFunc {
	d := &fasthttp.TCPDialer{Concurrency: 0}
	return func(addr string) (net.Conn, error) {
		c, err := d.DialTimeout(addr, timeout)
		if err != nil {
			return nil, err
		}
		return peekable(c), nil
	}
}

// pick returns the healthy, unejected target with the fewest pending
// requests other than skip; when there is none it ignores health and
// ejection rather than refuse (a health check can be wrong, a refusal is
// certain).
func (p *Pool) pick(skip *target) *target {
	n := len(p.targets)
	start := int(p.next.Add(1))
	now := time.Now().UnixNano()
	var best, fallback *target
	for i := 0; i < n; i++ {
		t := p.targets[(start+i)%n]
		if t == skip && n > 1 {
			continue
		}
		if fallback == nil || t.hc.PendingRequests() < fallback.hc.PendingRequests() {
			fallback = t
		}
		if t.healthy.Load() && !t.ejected(now) && (best == nil || t.hc.PendingRequests() < best.hc.PendingRequests()) {
			best = t
		}
	}
	if best == nil {
		return fallback
	}
	return best
}

// Forward sends req to a target and reads the answer into resp. An
// idempotent request is tried again, on another target when there is one,
// up to Spec.Retries times, when the connection failed before the upstream
// answered (refused, dial timeout, pool full, or a pooled connection the
// upstream had closed). Nothing else is retried.
func (p *Pool) Forward(req *fasthttp.Request, resp *fasthttp.Response) error {
	deadline := time.Now().Add(p.spec.Timeout)
	var last *target
	var err error
	for attempt := 0; attempt <= p.spec.Retries; attempt++ {
		t := p.pick(last)
		req.URI().SetSchemeBytes(t.scheme) // the client's was http or https
		err = t.hc.DoDeadline(req, resp, deadline)
		if errors.Is(err, ErrClientBody) {
			// The client broke off its body: no fault of the target's.
			return &Error{Upstream: p.Name, Kind: KindClient, Err: err}
		}
		p.observe(t, err)
		if err == nil {
			return nil
		}
		last = t
		if !retryable(req, err) || time.Now().After(deadline) {
			break
		}
	}
	kind := classify(err)
	p.errs[kind].Inc()
	return &Error{Upstream: p.Name, Kind: kind, Err: err}
}

var (
	schemeHTTP  = []byte("http")
	schemeHTTPS = []byte("https")
)

// maxBackoffShift bounds an ejection at 8 × the backoff.
const maxBackoffShift = 3

// observe counts t's connection failures in a row and ejects it at
// Eject.Failures; a success readmits it for good.
func (p *Pool) observe(t *target, err error) {
	if p.spec.Eject.Failures == 0 {
		return
	}
	if err == nil {
		if t.fails.Load() != 0 || t.ejections.Load() != 0 {
			t.fails.Store(0)
			t.ejections.Store(0)
		}
		return
	}
	if !connFailure(err) {
		return
	}
	if t.ejections.Load() == 0 && int(t.fails.Add(1)) < p.spec.Eject.Failures {
		return
	}
	// Ejected: the first time after Failures in a row, then, readmitted
	// and failing again, at once and for longer.
	t.fails.Store(0)
	shift := min(t.ejections.Add(1)-1, maxBackoffShift)
	d := p.spec.Eject.Backoff << shift
	t.until.Store(time.Now().Add(d).UnixNano())
	p.ejections.Inc()
	p.log.Warn("upstream target ejected", "upstream", p.Name, "target", t.url, "for", d.String(), "err", err.Error())
}

// connFailure: the connection failed, not the upstream's answer: refused,
// reset, or a dial timeout.
func connFailure(err error) bool {
	switch classify(err) {
	case KindRefused, KindReset:
		return true
	}
	return errors.Is(err, fasthttp.ErrDialTimeout)
}

// Ejected counts the targets out of rotation now.
func (p *Pool) Ejected() int {
	now, n := time.Now().UnixNano(), 0
	for _, t := range p.targets {
		if t.ejected(now) {
			n++
		}
	}
	return n
}

// retryable: the request is idempotent and the upstream cannot have acted
// on it.
func retryable(req *fasthttp.Request, err error) bool {
	h := &req.Header
	if !(h.IsGet() || h.IsHead() || h.IsOptions() || h.IsPut() || h.IsDelete() || h.IsTrace()) {
		return false
	}
	if req.IsBodyStream() {
		return false
	}
	switch classify(err) {
	case KindRefused, KindSaturated:
		return true
	}
	return errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF)
}

// Run checks the targets' health every Health.Interval until ctx ends. It
// returns at once when health checks are off.
func (p *Pool) Run(ctx context.Context) {
	if p.spec.Health.Path == "" {
		return
	}
	tick := time.NewTicker(p.spec.Health.Interval)
	defer tick.Stop()
	for {
		for _, t := range p.targets {
			p.check(t)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *Pool) check(t *target) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(t.url + p.spec.Health.Path)
	req.Header.SetMethod(fasthttp.MethodGet)
	err := t.hc.DoTimeout(req, resp, p.spec.Health.Timeout)
	ok := err == nil && resp.StatusCode() >= 200 && resp.StatusCode() < 400
	if was := t.healthy.Swap(ok); was != ok {
		status := 0 // no answer
		if err == nil {
			status = resp.StatusCode()
		}
		p.log.Warn("upstream target health changed", "upstream", p.Name, "target", t.url, "healthy", ok, "status", status, "err", errString(err))
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// inherit takes over the health and ejection state of old's targets with
// the same URL: a pool rebuilt by a reload does not send traffic to a
// target its health check or ejection had taken out.
func (p *Pool) inherit(old *Pool) {
	for _, t := range p.targets {
		for _, o := range old.targets {
			if o.url == t.url {
				t.healthy.Store(o.healthy.Load())
				t.fails.Store(o.fails.Load())
				t.ejections.Store(o.ejections.Load())
				t.until.Store(o.until.Load())
				break
			}
		}
	}
}

// closeIdle closes the targets' idle connections: the pool left the
// routing table, and requests still on it finish on their own.
func (p *Pool) closeIdle() {
	for _, t := range p.targets {
		t.hc.CloseIdleConnections()
	}
}

// Healthy counts the targets that passed their last health check.
func (p *Pool) Healthy() int {
	n := 0
	for _, t := range p.targets {
		if t.healthy.Load() {
			n++
		}
	}
	return n
}
