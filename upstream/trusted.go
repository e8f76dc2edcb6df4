package upstream

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// Trusted is the set of proxies in front of the gateway whose
// X-Forwarded-* headers are believed (server.trusted_proxies). The zero
// value and nil trust nobody: the gateway is the edge.
type Trusted struct {
	prefixes []netip.Prefix
}

// ParseTrusted reads CIDRs ("10.0.0.0/8") and single addresses
// ("192.0.2.1"); the error names the entry by its index.
func ParseTrusted(entries []string) (*Trusted, error) {
	t := &Trusted{}
	for i, e := range entries {
		e = strings.TrimSpace(e)
		p, err := netip.ParsePrefix(e)
		if err != nil {
			a, aerr := netip.ParseAddr(e)
			if aerr != nil {
				return nil, fmt.Errorf("entry %d: %q is neither a CIDR nor an IP address", i, e)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		t.prefixes = append(t.prefixes, p.Masked())
	}
	return t, nil
}

// Contains says whether addr is a trusted proxy.
func (t *Trusted) Contains(addr netip.Addr) bool {
	if t == nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Peer is whether the connection's peer is a trusted proxy.
func (t *Trusted) Peer(ip net.IP) bool {
	if t == nil || len(t.prefixes) == 0 {
		return false
	}
	a, ok := netip.AddrFromSlice(ip)
	return ok && t.Contains(a)
}

// ClientIP is the address to identify the client by. From an untrusted
// peer it is the peer. From a trusted proxy it is the rightmost
// X-Forwarded-For hop, across every copy of the header, that is not itself
// a trusted proxy: the one a trusted proxy appended, which the client
// cannot choose. A hop that does not parse as an IP there means the proxy
// misbehaves: the peer is used. When every hop is trusted, the leftmost.
// The address is unmapped (::ffff:1.2.3.4 is 1.2.3.4) and has no zone; it
// is invalid only for a peer that is not an IP address.
func (t *Trusted) ClientIP(h *fasthttp.RequestHeader, peer net.IP) netip.Addr {
	if !t.Peer(peer) {
		return peerAddr(peer)
	}
	all := h.PeekAll(fasthttp.HeaderXForwardedFor)
	var leftmost netip.Addr
	for i := len(all) - 1; i >= 0; i-- {
		v := all[i]
		for len(v) > 0 {
			var hop []byte
			if j := bytes.LastIndexByte(v, ','); j >= 0 {
				hop, v = v[j+1:], v[:j]
			} else {
				hop, v = v, nil
			}
			hop = bytes.TrimSpace(hop)
			if len(hop) == 0 {
				continue
			}
			a, err := netip.ParseAddr(unsafe.String(&hop[0], len(hop)))
			if err != nil || a.Zone() != "" {
				return peerAddr(peer)
			}
			// Unmapped: one client, however its proxy spells the address,
			// is one client.
			if !t.Contains(a) {
				return a.Unmap()
			}
			leftmost = a
		}
	}
	if leftmost.IsValid() {
		return leftmost.Unmap()
	}
	return peerAddr(peer)
}

// peerAddr is ip unmapped, or the zero Addr when ip is not an address.
func peerAddr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
