package upstream

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// Timeout is upstreams.<name>.timeout: how long the upstream has to
// answer one request, retries included.
func (p *Pool) Timeout() time.Duration { return p.spec.Timeout }

// CountError counts err, a target's failure to take a request outside
// Forward (an upgrade's handshake: DialTunnel counts its own), in
// l1gw_upstream_errors_total by its kind.
func (p *Pool) CountError(err error) { p.errs[classify(err)].Inc() }

// DialTunnel connects to one of the pool's targets for an upgraded
// connection (WebSocket): the target Forward would pick, over TLS for an
// https:// one, within the dial timeout. A failure counts toward the
// target's ejection and in l1gw_upstream_errors_total. It returns the
// target's URL too, as configured: HasTarget tells whether a later pool
// still has it.
func (p *Pool) DialTunnel() (net.Conn, string, error) {
	t := p.pick(nil)
	deadline := time.Now().Add(p.spec.DialTimeout)
	c, err := net.DialTimeout("tcp", t.hc.Addr, p.spec.DialTimeout)
	if err == nil && t.hc.IsTLS {
		cfg := t.hc.TLSConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(t.hc.Addr)
		}
		tc := tls.Client(c, cfg)
		tc.SetDeadline(deadline)
		if err = tc.Handshake(); err != nil {
			c.Close()
		} else {
			tc.SetDeadline(time.Time{})
			c = tc
		}
	}
	p.observe(t, err)
	if err != nil {
		kind := classify(err)
		p.errs[kind].Inc()
		return nil, "", &Error{Upstream: p.Name, Kind: kind, Err: fmt.Errorf("tunnel to %s: %w", t.url, err)}
	}
	return c, t.url, nil
}

// HasTarget reports whether url, a target's as DialTunnel returned it, is
// one of the pool's targets.
func (p *Pool) HasTarget(url string) bool {
	for _, t := range p.targets {
		if t.url == url {
			return true
		}
	}
	return false
}
