package gateway

import (
	"context"
	"sync"
	"time"
)

// tunnelSet is a gateway's tunnels from their hand-over to fasthttp's
// hijack until their leases are given back: what shutdown waits for, and
// ends once its grace is over.
type tunnelSet struct {
	mu   sync.Mutex
	n    int                 // handed over, not yet finished
	ends map[*tunnelEnd]bool // the joined ones' ends
}

// tunnelEnd ends one joined tunnel.
type tunnelEnd struct{ end func() }

// start counts a tunnel handed over; finish, once, when it is done (its
// leases given back).
func (s *tunnelSet) start() {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
}

func (s *tunnelSet) finish() {
	s.mu.Lock()
	s.n--
	s.mu.Unlock()
}

// joined registers a joined tunnel's end; the func returned forgets it.
func (s *tunnelSet) joined(end func()) func() {
	e := &tunnelEnd{end}
	s.mu.Lock()
	if s.ends == nil {
		s.ends = map[*tunnelEnd]bool{}
	}
	s.ends[e] = true
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.ends, e)
		s.mu.Unlock()
	}
}

func (s *tunnelSet) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// tunnelsPoll is how often shutdown looks whether the tunnels are done.
const tunnelsPoll = 10 * time.Millisecond

// tunnelsCut bounds the wait for tunnels ended at the end of the grace:
// their handlers return as soon as both sides are closed.
const tunnelsCut = 2 * time.Second

// EndTunnels is shutdown's part for the tunnels, which fasthttp no longer
// counts once hijacked: it lets them run until ctx ends (the shutdown
// grace), then ends those still open, and returns once every tunnel's
// leases are given back (queued for Redis), or after a bound. It returns
// how many were ended, and how many were still not done at the bound.
func (g *Gateway) EndTunnels(ctx context.Context) (ended, left int) {
	t := time.NewTicker(tunnelsPoll)
	defer t.Stop()
	for g.tunnels.open() > 0 {
		select {
		case <-ctx.Done():
			g.tunnels.mu.Lock()
			ends := make([]*tunnelEnd, 0, len(g.tunnels.ends))
			for e := range g.tunnels.ends {
				ends = append(ends, e)
			}
			g.tunnels.mu.Unlock()
			for _, e := range ends { // not under the lock: a close may wait
				e.end()
				ended++
			}
			deadline := time.Now().Add(tunnelsCut)
			for g.tunnels.open() > 0 && time.Now().Before(deadline) {
				time.Sleep(tunnelsPoll)
			}
			return ended, g.tunnels.open()
		case <-t.C:
		}
	}
	return 0, 0
}
