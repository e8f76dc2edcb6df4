package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// slowlorisEvery is how often a slowloris connection sends one more
// header line.
const slowlorisEvery = time.Second

// openRate spreads the opening of the connections, in connections per
// second: 10 000 at once overflow a listen backlog of 4096, and the kernel
// drops the handshakes it cannot queue.
const openRate = 2000

// pressure holds connections open against the gateway beside an attack:
// idle ones that never send a byte, and slowloris ones that send a request
// head one header line a second and never end it. One the gateway closes
// is opened again, so the pressure lasts.
type pressure struct {
	stop chan struct{}
	wg   sync.WaitGroup
	open atomic.Int64
	// dialFailures counts dials that failed (and were tried again); ends
	// counts held connections the gateway ended.
	dialFailures, ends atomic.Int64
	mu                 sync.Mutex
	why                map[string]int // how the connections the gateway ended ended
}

// ended counts one connection the gateway ended, by the first line it
// sent (or the read error when it sent nothing).
func (p *pressure) ended(first string) {
	p.ends.Add(1)
	first, _, _ = strings.Cut(first, "\r\n")
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.why == nil {
		p.why = map[string]int{}
	}
	if _, ok := p.why[first]; ok || len(p.why) < 8 {
		p.why[first]++
	}
}

// startPressure opens idle + slow connections to addr (127.0.0.1:port),
// openRate a second.
func startPressure(addr string, idle, slow int) (*pressure, error) {
	if err := harness.CheckLoopback(addr); err != nil {
		return nil, err
	}
	p := &pressure{stop: make(chan struct{})}
	for i := range idle + slow {
		p.wg.Add(1)
		go p.hold(addr, i >= idle, time.Duration(i)*time.Second/openRate)
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
	for {
		c, err := dialHeld(addr, 5*time.Second)
		if err != nil {
			p.dialFailures.Add(1)
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
	var got []byte
	go func() {
		// Until the gateway closes it; what it said first tells why.
		buf := make([]byte, 64)
		n, err := io.ReadAtLeast(c, buf, 1)
		got = buf[:n]
		if err == nil {
			io.Copy(io.Discard, c)
		} else if n == 0 {
			got = []byte(err.Error())
		}
		close(closed)
	}()
	ended := func() bool {
		<-closed
		p.ended(string(got))
		return false
	}
	if slow {
		if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: l1gw\r\n"); err != nil {
			c.Close()
			return ended()
		}
	}
	// Only a slowloris connection wakes: 10 000 idle ones ticking would
	// load the CPUs the measurement shares.
	var tick <-chan time.Time
	if slow {
		t := time.NewTicker(slowlorisEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-closed:
			return ended()
		case <-p.stop:
			reset(c)
			<-closed
			return true
		case <-tick:
			if _, err := io.WriteString(c, "X-Slow: 1\r\n"); err != nil {
				c.Close()
				return ended()
			}
		}
	}
}

// halt closes every connection and waits for its goroutine.
func (p *pressure) halt() {
	close(p.stop)
	p.wg.Wait()
}

// pressureEnv marks the runner's own child that holds the pressure
// connections: out of the runner's process, its 21 000 goroutines neither
// share the runner's garbage collector nor delay the attack's timings.
const pressureEnv = "L1GW_LOADTEST_PRESSURE"

// pressureChild is that child's main: it holds the connections named in
// the environment ("addr idle slowloris") and writes "open ended
// dial-failures" every 100 ms until its stdin closes.
func pressureChild(spec string) int {
	var addr string
	var idle, slow int
	if _, err := fmt.Sscan(spec, &addr, &idle, &slow); err != nil {
		fmt.Fprintf(os.Stderr, "pressure child: %q: %v\n", spec, err)
		return 2
	}
	p, err := startPressure(addr, idle, slow)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pressure child: %v\n", err)
		return 1
	}
	stdin := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdin)
	}()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stdin:
			p.halt()
			p.mu.Lock()
			for k, n := range p.why {
				fmt.Fprintf(os.Stderr, "pressure child: %d ended with %q\n", n, k)
			}
			p.mu.Unlock()
			return 0
		case <-t.C:
			fmt.Printf("%d %d %d\n", p.open.Load(), p.ends.Load(), p.dialFailures.Load())
		}
	}
}

// pressureProc is the child holding the connections, seen from the runner.
type pressureProc struct {
	cmd                      *exec.Cmd
	stdin                    io.Closer
	open, ends, dialFailures atomic.Int64
	done                     chan struct{}
}

// startPressureProc runs the runner's own binary as the pressure child.
func startPressureProc(addr string, idle, slow int) (*pressureProc, error) {
	if err := harness.CheckLoopback(addr); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", pressureEnv, addr, idle, slow))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr // how the connections ended, at its end
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pressure child: %w", err)
	}
	p := &pressureProc{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var open, ends, dials int64
			if _, err := fmt.Sscan(sc.Text(), &open, &ends, &dials); err == nil {
				p.open.Store(open)
				p.ends.Store(ends)
				p.dialFailures.Store(dials)
			}
		}
	}()
	return p, nil
}

// halt ends the child: its connections close with it.
func (p *pressureProc) halt() {
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd.Wait()
}
