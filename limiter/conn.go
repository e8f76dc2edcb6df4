package limiter

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// conn is one connection of the decision path. It can ask the kernel how
// many bytes Redis has sent on it, read or not: that is the evidence that
// Redis answered, which no clock inside a busy process can give (see
// pipe.go).
type conn struct {
	nc     net.Conn
	fd     int // the TCP socket under nc, for the kernel's counters; -1 where unknown
	r      *bufio.Reader
	addr   string
	reads  atomic.Uint64 // reads that returned bytes
	writes atomic.Uint64 // writes that completed
	inRead atomic.Bool   // the lane is inside Read, waiting for bytes
}

// connOptions are what dialing a node needs.
type connOptions struct {
	username, password string
	db                 int
	tls                *tls.Config
	dialTimeout        time.Duration
	// primary: the node must say ROLE master (a demoted or restarted
	// primary Sentinel has not caught up with is refused).
	primary bool
}

// Read implements io.Reader for the bufio.Reader, counting progress.
func (c *conn) Read(p []byte) (int, error) {
	c.inRead.Store(true)
	n, err := c.nc.Read(p)
	c.inRead.Store(false)
	if n > 0 {
		c.reads.Add(1)
	}
	return n, err
}

// write writes b whole, counting it done.
func (c *conn) write(b []byte) error {
	_, err := c.nc.Write(b)
	c.writes.Add(1)
	return err
}

// counters count what c has sent to Redis and what Redis has sent on it:
// the kernel's byte counts, whether or not the process has read the
// bytes yet; where the kernel cannot tell, the writes and the reads that
// completed. They only grow. Call it from the lane, or under its lock
// (the fd is valid while c is the lane's connection).
func (c *conn) counters() (sent, received uint64) {
	if c.fd >= 0 {
		if s, r, ok := socketCounters(c.fd); ok {
			return s, r
		}
	}
	return c.writes.Load(), c.reads.Load()
}

// unread is how many bytes the kernel holds for c not yet read; -1 when
// it cannot tell.
func (c *conn) unread() int {
	if c.fd < 0 {
		return -1
	}
	return socketUnread(c.fd)
}

func (c *conn) close() { c.nc.Close() }

// dialConn connects to addr and runs the handshake (AUTH, SELECT, ROLE)
// in one round trip, all within the dial timeout.
func dialConn(addr string, o *connOptions) (*conn, error) {
	d := net.Dialer{Timeout: o.dialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, addr: addr, fd: -1}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		if raw, err := tc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) { c.fd = int(fd) }) // stays valid until nc is closed
		}
	}
	if o.tls != nil {
		cfg := o.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		c.nc = tls.Client(nc, cfg)
	}
	c.r = bufio.NewReaderSize(c, 16<<10)
	if err := c.handshake(o); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	return c, nil
}

func (c *conn) handshake(o *connOptions) error {
	c.nc.SetDeadline(time.Now().Add(o.dialTimeout))
	defer c.nc.SetDeadline(time.Time{})
	var b []byte
	replies := 1
	if o.password != "" {
		if o.username != "" {
			b = appendArray(b, 3)
			b = appendBulk(appendBulk(appendBulk(b, "AUTH"), o.username), o.password)
		} else {
			b = appendBulk(appendBulk(appendArray(b, 2), "AUTH"), o.password)
		}
		replies++
	}
	if o.db != 0 {
		b = appendBulkInt(appendBulk(appendArray(b, 2), "SELECT"), int64(o.db))
		replies++
	}
	b = appendBulk(appendArray(b, 1), "ROLE")
	if _, err := c.nc.Write(b); err != nil {
		return err
	}
	for range replies - 1 {
		if _, err := readStatus(c.r); err != nil {
			return err
		}
	}
	role, err := readRole(c.r)
	if err != nil {
		return fmt.Errorf("ROLE: %w", err)
	}
	if o.primary && role != "master" {
		return fmt.Errorf("%w: it says %s", ErrNotPrimary, role)
	}
	return nil
}
