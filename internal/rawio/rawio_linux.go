//go:build linux

package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// maxRW caps one call's length, as the net package's own reads and
// writes do.
const maxRW = 1 << 30

// Conn is a *net.TCPConn whose Read and Write use raw system calls. Its
// deadlines, Close and the rest are the TCPConn's, ReadFrom and WriteTo
// among them (io.Copy's, which stream each read on as it comes, through
// the net package's calls). Like a TCPConn's, its Reads may be
// concurrent, and its Writes: each direction takes its turn under a lock
// of its own.
type Conn struct {
	*net.TCPConn
	rc     syscall.RawConn
	plain  bool // the net package's calls: under the race detector
	rd, wr call
}

// call is one direction's system call in progress: the buffer, what was
// done and the error. wait (the RawConn's Read or Write) and fn, the
// callback given to it, are bound once so that a call allocates nothing.
// mu holds it for one call.
type call struct {
	mu   sync.Mutex
	p    []byte
	n    int
	err  syscall.Errno
	wait func(func(fd uintptr) bool) error
	fn   func(fd uintptr) bool
}

// do makes one call over p, in turn with the direction's other callers.
func (k *call) do(p []byte) (n int, errno syscall.Errno, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.p, k.n, k.err = p, 0, 0
	err = k.wait(k.fn)
	n, errno = k.n, k.err
	k.p = nil
	return n, errno, err
}

// Wrap returns c as a Conn when it is a *net.TCPConn, and c as it is
// otherwise.
func Wrap(c net.Conn) net.Conn { return wrap(c, !raceEnabled) }

// wrap is Wrap, with raw system calls or (raw false) the net package's.
func wrap(c net.Conn, raw bool) net.Conn {
	tc, rc, ok := tcpOf(c)
	if !ok {
		return c
	}
	rw := &Conn{TCPConn: tc, rc: rc, plain: !raw}
	rw.rd.wait, rw.rd.fn = rc.Read, rw.read
	rw.wr.wait, rw.wr.fn = rc.Write, rw.write
	return rw
}

// Read reads into p as net.TCPConn.Read does: io.EOF at the peer's end
// of the stream, a *net.OpError otherwise.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 || c.plain {
		return c.TCPConn.Read(p) // an empty read still says the conn is closed
	}
	n, errno, err := c.rd.do(p[:min(len(p), maxRW)])
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.rd.p))), uintptr(len(c.rd.p)))
		switch e {
		case 0:
			c.rd.n = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // the poller waits, within the read deadline
		default:
			c.rd.err = e
			return true
		}
	}
}

// Write writes p whole, or returns how much of it went and why the rest
// did not, as net.TCPConn.Write does.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 || c.plain {
		return c.TCPConn.Write(p)
	}
	n, errno, err := c.wr.do(p)
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	case n < len(p):
		return n, c.opError("write", io.ErrUnexpectedEOF) // as the net package says of a write that took nothing
	}
	return n, nil
}

func (c *Conn) write(fd uintptr) bool {
	for len(c.wr.p) > 0 {
		chunk := c.wr.p[:min(len(c.wr.p), maxRW)]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(chunk))), uintptr(len(chunk)))
		switch e {
		case 0:
			if n == 0 {
				return true // a socket never takes nothing: Write says so
			}
			c.wr.n += int(n)
			c.wr.p = c.wr.p[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // the poller waits, within the write deadline
		default:
			c.wr.err = e
			return true
		}
	}
	return true
}

// opError names op and the connection's addresses, as the net package's
// errors do; err is the RawConn's own *net.OpError ("raw-read", a
// deadline or a closed connection) or an errno.
func (c *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
