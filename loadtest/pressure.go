package main

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// slowlorisEvery is how often a slowloris connection sends one more
// header line.
const slowlorisEvery = time.Second

// pressure holds connections open against the gateway beside an attack:
// idle ones that never send a byte, and slowloris ones that send a request
// head one header line a second and never end it. One the gateway closes
// is opened again, so the pressure lasts.
type pressure struct {
	stop       chan struct{}
	wg         sync.WaitGroup
	open       atomic.Int64
	reconnects atomic.Int64
}

// startPressure opens idle + slow connections to addr (127.0.0.1:port),
// spread over about a second.
func startPressure(addr string, idle, slow int) (*pressure, error) {
	if err := harness.CheckLoopback(addr); err != nil {
		return nil, err
	}
	p := &pressure{stop: make(chan struct{})}
	for i := range idle + slow {
		p.wg.Add(1)
		go p.hold(addr, i >= idle, time.Duration(i)*time.Second/time.Duration(idle+slow))
	}
	return p, nil
}

// hold keeps one connection open until stop, opening it again each time
// the gateway closes it.
func (p *pressure) hold(addr string, slow bool, delay time.Duration) {
	defer p.wg.Done()
	select {
	case <-time.After(delay):
	case <-p.stop:
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	for first := true; ; first = false {
		if !first {
			p.reconnects.Add(1)
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			select {
			case <-time.After(100 * time.Millisecond):
				continue
			case <-p.stop:
				return
			}
		}
		p.open.Add(1)
		done := p.use(c, slow)
		p.open.Add(-1)
		c.Close()
		if done {
			return
		}
	}
}

// use holds c until the gateway closes it (false) or stop (true).
func (p *pressure) use(c net.Conn, slow bool) bool {
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c) // until the gateway closes it
		close(closed)
	}()
	if slow {
		if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: l1gw\r\n"); err != nil {
			return false
		}
	}
	tick := time.NewTicker(slowlorisEvery)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			return false
		case <-p.stop:
			c.Close()
			<-closed
			return true
		case <-tick.C:
			if slow {
				if _, err := io.WriteString(c, "X-Slow: 1\r\n"); err != nil {
					return false
				}
			}
		}
	}
}

// halt closes every connection and waits for its goroutine.
func (p *pressure) halt() {
	close(p.stop)
	p.wg.Wait()
}
