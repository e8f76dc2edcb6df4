package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxyDialTimeout bounds the proxy's dial of its target.
const proxyDialTimeout = time.Second

// latencyProxy is a TCP proxy on 127.0.0.1 that delays every chunk its
// target sends back by the current latency, in order: a slow network
// between the gateway and Redis. Requests go through undelayed, so a
// round trip is the latency longer (toxiproxy's "latency" toxic on the
// downstream, its default).
type latencyProxy struct {
	ln      net.Listener
	target  string
	latency atomic.Int64 // nanoseconds

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// startLatencyProxy listens on a free loopback port and forwards each
// connection to target, with no latency until SetLatency.
func startLatencyProxy(target string) (*latencyProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("latency proxy listen: %w", err)
	}
	p := &latencyProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's 127.0.0.1:port.
func (p *latencyProxy) Addr() string { return p.ln.Addr().String() }

// SetLatency delays every chunk read from the target from now on by d.
func (p *latencyProxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// Close stops accepting, closes every connection and waits for the
// copying goroutines.
func (p *latencyProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *latencyProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

// track registers c for Close; false when the proxy is closing.
func (p *latencyProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *latencyProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

// handle copies client → target as it comes and target → client delayed;
// when either direction ends, both connections close.
func (p *latencyProxy) handle(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, proxyDialTimeout)
	if err != nil {
		p.untrack(client) // the client sees the target refuse, as without the proxy
		return
	}
	if !p.track(server) {
		p.untrack(client)
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(server, client)
		done <- struct{}{}
	}()
	go func() {
		p.copyDelayed(client, server)
		done <- struct{}{}
	}()
	<-done
	p.untrack(client, server) // unblocks the other direction
	<-done
}

// chunk is what one read from the target returned, and when.
type chunk struct {
	b  []byte
	at time.Time
}

// copyDelayed reads src and writes each chunk to dst once the latency
// (as set when the chunk was read) has passed. One writer keeps the order.
func (p *latencyProxy) copyDelayed(dst io.Writer, src io.Reader) {
	chunks := make(chan chunk, 256)
	go func() {
		defer close(chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				at := time.Now().Add(time.Duration(p.latency.Load()))
				chunks <- chunk{b: append([]byte(nil), buf[:n]...), at: at}
			}
			if err != nil {
				return
			}
		}
	}()
	var werr error
	for c := range chunks {
		if werr != nil {
			continue // drain, so the reader can finish
		}
		if wait := time.Until(c.at); wait > 0 {
			time.Sleep(wait)
		}
		_, werr = dst.Write(c.b)
	}
}
