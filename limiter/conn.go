package limiter

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/l1gw/l1gw/internal/rawio"
)

// conn is one connection of the decision path. It can ask the kernel how
// many bytes Redis has sent on it, read or not: that is the evidence that
// Redis answered, which no clock inside a busy process can give (see
// pipe.go).
type conn struct {
	nc      net.Conn // raw, or TLS over raw
	raw     *rawConn
	fd      int // the TCP socket, for the kernel's counters; -1 where unknown
	r       *bufio.Reader
	addr    string
	writes  atomic.Uint64 // writes that completed
	inWrite atomic.Bool   // the lane is inside Write
	closed  atomic.Bool   // fd may be another socket's now: no evidence from it
	seen    nodeID        // what identify's INFO said of the node; its runID "" if unknown
}

// rawConn is the TCP connection under any TLS, counting the bytes read
// from the kernel, in the kernel's own unit.
type rawConn struct {
	net.Conn
	inRead   atomic.Bool   // inside Read: waiting for bytes, or taking them
	consumed atomic.Uint64 // bytes read; stored after inRead is cleared
}

// Read marks the wait, then counts: a watchdog that sees inRead and as
// many bytes consumed as the kernel received knows the lane waits for
// bytes that have not come (a read that took bytes but has not counted
// them yet shows fewer consumed than received).
func (r *rawConn) Read(p []byte) (int, error) {
	r.inRead.Store(true)
	n, err := r.Conn.Read(p)
	r.inRead.Store(false)
	r.consumed.Add(uint64(max(n, 0)))
	return n, err
}

// connOptions are what dialing a node needs.
type connOptions struct {
	username    string
	password    func() string // asked at each dial: a password file may change
	db          int
	tls         *tls.Config
	dialTimeout time.Duration
	// primary: the node must say ROLE master (a demoted or restarted
	// primary Sentinel has not caught up with is refused). Sentinel mode
	// only, as before the pipes: ROLE is in @admin, which a least-privilege
	// ACL user may not have.
	primary bool
	// readOnly sends READONLY: a Cluster replica serves reads only then.
	readOnly bool
	// identify asks INFO server and replication for the node's run_id and
	// its place in replication (primaries): a new run_id at the same
	// address is a restart, a replica since promoted a failback (see
	// pipe.identified). An ACL that refuses INFO leaves them unknown.
	identify bool
	// linked: the node must say, in the same INFO, that it is a replica
	// whose link to its primary is up (replica pipes of Sentinel and
	// Cluster). A replica restarted serves, until its sync is done
	// (Redis' replica-serve-stale-data), what it came back with: none, or
	// an older save, which lacks the admissions an earlier read showed
	// and replica consistency has forgotten. Its restart drops the
	// connections, so each new one is checked; one that stays up while a
	// replica resyncs reads the data it had, then the primary's. Refused,
	// the dial fails the read, which the primary then decides, and
	// pipeConfig.unlinked hears of it. An ACL that refuses INFO leaves it
	// unchecked.
	linked bool
}

// ErrReplicaUnlinked refuses a connection to read decisions from a node
// that is not a replica in step with its primary.
var ErrReplicaUnlinked = errors.New("limiter: the node is not a replica linked to its primary")

// write writes b whole, counting it done.
func (c *conn) write(b []byte) error {
	c.inWrite.Store(true)
	_, err := c.nc.Write(b)
	c.inWrite.Store(false)
	c.writes.Add(1)
	return err
}

// counters count what c has sent to Redis and what Redis has sent on it:
// the kernel's byte counts, whether or not the process has read the
// bytes yet; where the kernel cannot tell, the writes that completed and
// the bytes read. They only grow. Call it from the lane, or under its
// lock (the fd is valid while c is the lane's connection).
func (c *conn) counters() (sent, received uint64) {
	if c.fd >= 0 && !c.closed.Load() {
		if s, r, ok := socketCounters(c.fd); ok {
			return s, r
		}
	}
	return c.writes.Load(), c.raw.consumed.Load()
}

// waiting reports whether the lane waits in Read with every byte Redis
// sent taken: it waits for bytes that have not come. Read inRead before
// consumed before the kernel's count: then a true answer cannot be a
// read that took bytes it has not counted yet.
func (c *conn) waiting() bool {
	if !c.raw.inRead.Load() {
		return false
	}
	consumed := c.raw.consumed.Load()
	_, received := c.counters()
	return received == consumed
}

// heldInKernel reports whether the kernel holds bytes written to c that
// it has not sent: a write under way waits on the peer, which takes
// nothing in (see lane.check), not on the gateway. False where the kernel
// cannot tell.
func (c *conn) heldInKernel() bool {
	if c.fd < 0 || c.closed.Load() {
		return false
	}
	n, ok := socketUnsent(c.fd)
	return ok && n > 0
}

func (c *conn) close() {
	c.closed.Store(true)
	c.nc.Close()
}

// pass is the password of a new connection; "" for none.
func (o *connOptions) pass() string {
	if o.password == nil {
		return ""
	}
	return o.password()
}

// dialWatch is told how a dial goes, so that a watchdog can judge it on
// the kernel's evidence rather than by a clock that a busy gateway runs
// late (see lane.dialSilence).
type dialWatch interface {
	// socket: the socket exists and is about to connect. sock stays
	// valid to Control until it is closed, and refuses it after.
	socket(sock syscall.RawConn)
	// connected: the TCP connection is up, and the handshake (TLS, then
	// the commands) starts on raw.
	connected(raw *rawConn)
}

// dialConn connects to addr and runs the handshake (AUTH, SELECT,
// READONLY, ROLE, INFO server replication) in one round trip, all within
// the dial timeout. w, if not nil, is told of the socket and the
// connection as they come.
func dialConn(addr string, o *connOptions, w dialWatch) (*conn, error) {
	d := net.Dialer{Timeout: o.dialTimeout, KeepAlive: 30 * time.Second}
	if w != nil {
		d.ControlContext = func(_ context.Context, _, _ string, sock syscall.RawConn) error {
			w.socket(sock)
			return nil
		}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{raw: &rawConn{Conn: rawio.Wrap(nc)}, addr: addr, fd: -1}
	if w != nil {
		w.connected(c.raw)
	}
	c.nc = c.raw
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
		c.nc = tls.Client(c.raw, cfg)
	}
	c.r = bufio.NewReaderSize(c.nc, 16<<10)
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
	statuses := 0 // +OK replies to read: AUTH, SELECT, READONLY
	if password := o.pass(); password != "" {
		if o.username != "" {
			b = appendBulk(appendBulk(appendBulk(appendArray(b, 3), "AUTH"), o.username), password)
		} else {
			b = appendBulk(appendBulk(appendArray(b, 2), "AUTH"), password)
		}
		statuses++
	}
	if o.db != 0 {
		b = appendBulkInt(appendBulk(appendArray(b, 2), "SELECT"), int64(o.db))
		statuses++
	}
	if o.readOnly {
		b = appendBulk(appendArray(b, 1), "READONLY")
		statuses++
	}
	if o.primary {
		b = appendBulk(appendArray(b, 1), "ROLE")
	}
	if o.identify || o.linked {
		b = appendBulk(appendBulk(appendBulk(appendArray(b, 3), "INFO"), "server"), "replication")
	}
	if len(b) == 0 {
		return nil
	}
	if _, err := c.nc.Write(b); err != nil {
		return err
	}
	for range statuses {
		if _, err := readStatus(c.r); err != nil {
			return err
		}
	}
	var roleErr error
	if o.primary {
		role, err := readRole(c.r)
		switch {
		case err != nil:
			return fmt.Errorf("ROLE: %w", err)
		case role != "master":
			roleErr = fmt.Errorf("%w: it says %s", ErrNotPrimary, role) // INFO's reply is still to be read
		}
	}
	if o.identify || o.linked {
		info, err := readStatus(c.r)
		var re replyError
		if err != nil && !errors.As(err, &re) {
			return fmt.Errorf("INFO server replication: %w", err)
		}
		m := parseMemoryState(info)
		if o.linked && err == nil && (!m.node.replica || !m.linked) {
			role := "master"
			if m.node.replica {
				role = "a replica whose link to its primary is down"
			}
			return fmt.Errorf("%w: it says %s", ErrReplicaUnlinked, role)
		}
		if o.identify {
			c.seen = m.node
			c.seen.addr = c.addr
		}
	}
	return roleErr
}
