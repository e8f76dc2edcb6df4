package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http/httputil"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// bufferBelow is the largest response body read whole before it is sent
// on; a longer one, a chunked one or one that ends at close is streamed.
const bufferBelow = 64 << 10

// streamTransport is the pools' fasthttp RoundTripper. It writes the
// request and reads the response head as fasthttp's own does. A body of a
// known length up to bufferBelow is read whole; any other streams to the
// client as it arrives (text/event-stream among them), each read waiting
// at most the upstream's timeout, so a stream lives as long as it moves,
// and cut past max_response_bytes.
type streamTransport struct {
	maxBody int           // max_response_bytes; 0 is no cap
	errs    errorCounters // the pool's, for failures after Forward returned
	// stale counts the pooled connections discarded before use
	// (idleState): l1gw_upstream_stale_conns_total{upstream}.
	stale *metrics.Counter
}

// errSwitched is a 101 to a request that asked for no upgrade.
var errSwitched = errors.New("the upstream switched protocols on a request that asked for none")

// RoundTrip implements fasthttp.RoundTripper. It never asks fasthttp to
// retry: Pool.Forward decides that.
func (t *streamTransport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	var deadline time.Time
	if d := req.GetTimeOut(); d > 0 {
		deadline = time.Now().Add(d)
	}
	cc, err := hc.AcquireConn(req.GetTimeOut(), req.ConnectionClose())
	for tries := 0; err == nil && idleState(cc.Conn()) != connClean; tries++ {
		// A pooled connection that holds bytes nobody asked for, or that
		// the upstream closed: never written to. Bytes past a response
		// would be read as the answer to this request, which may be
		// another tenant's.
		t.stale.Inc()
		hc.CloseConn(cc)
		if tries+1 == maxStale {
			return false, errStale
		}
		cc, err = hc.AcquireConn(req.GetTimeOut(), req.ConnectionClose())
	}
	if err != nil {
		return false, err
	}
	conn := cc.Conn()
	conn.SetWriteDeadline(earliest(deadline, hc.WriteTimeout))
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		hc.CloseConn(cc)
		return false, timeoutAsErrTimeout(err)
	}
	conn.SetReadDeadline(earliest(deadline, hc.ReadTimeout))
	br := hc.AcquireReader(conn)
	if err = ReadHead(br, &resp.Header); err != nil {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return false, timeoutAsErrTimeout(err)
	}
	reuse := !req.ConnectionClose() && !resp.ConnectionClose()
	n := resp.Header.ContentLength()
	switch {
	case resp.Header.StatusCode() == fasthttp.StatusSwitchingProtocols:
		// The forward strips Upgrade: the connection now speaks something
		// else, and must not serve another request.
		err = errSwitched
	case req.Header.IsHead() || noBody(resp.Header.StatusCode()):
		resp.SkipBody = true
	case t.maxBody > 0 && n > t.maxBody:
		err = fasthttp.ErrBodyTooLarge
	case n >= 0 && n <= bufferBelow:
		err = resp.ReadBody(br, n)
	default:
		// The head reaches the client only with the first body bytes:
		// wait for them here, so that a target that fails before them is
		// a 502 or 504, not an empty close.
		if _, err = br.Peek(1); err != nil {
			break
		}
		conn.SetReadDeadline(time.Time{}) // the stream sets its own
		s := streams.Get().(*stream)
		*s = stream{conn: conn, br: br, idle: hc.ReadTimeout, left: n, capped: t.maxBody, errs: t.errs,
			release: func(ok bool) { // only streamed responses pay for it
				ok = ok && br.Buffered() == 0 // bytes past the body: not reused
				hc.ReleaseReader(br)
				if ok && reuse {
					hc.ReleaseConn(cc)
				} else {
					hc.CloseConn(cc)
				}
			}}
		if n == -1 {
			// Its first chunk-size line read ahead and checked, under the
			// read deadline, without consuming it: one that does not parse
			// is a 502 here, not an empty close after the head went out.
			conn.SetReadDeadline(earliest(deadline, hc.ReadTimeout))
			if err = firstChunkOK(br); err != nil {
				*s = stream{}
				streams.Put(s)
				break
			}
			conn.SetReadDeadline(time.Time{})
			s.chunks = httputil.NewChunkedReader(br)
		}
		resp.SetBodyStream(s, n)
		return false, nil
	}
	// Bytes past the response (a body on a HEAD or a 204, or past
	// Content-Length): the connection is out of step. (Not reuse =
	// false: the stream's closure holds reuse, and would move it to the
	// heap.)
	keep := reuse && br.Buffered() == 0
	hc.ReleaseReader(br)
	if err != nil || !keep {
		hc.CloseConn(cc)
		return false, timeoutAsErrTimeout(err)
	}
	hc.ReleaseConn(cc)
	return false, nil
}

// connState is what a pooled connection holds before a request is
// written to it (idleState).
type connState int

const (
	connClean  connState = iota // nothing: it can serve
	connDirty                   // bytes nobody asked for
	connClosed                  // the upstream closed it, or it failed
)

// maxStale bounds how many pooled connections one request discards in a
// row; past it the request fails (errStale) rather than go on discarding.
const maxStale = 8

// errStale: every connection a request was given held bytes nobody asked
// for.
var errStale = errors.New("the upstream sent bytes no request asked for on every connection tried")

// ReadHead reads a response head, skipping interim 1xx answers (100
// Continue, 103 Early Hints) but 101, at most 100 of them.
func ReadHead(br *bufio.Reader, h *fasthttp.ResponseHeader) error {
	for range 100 {
		if err := h.Read(br); err != nil {
			return err
		}
		if c := h.StatusCode(); c >= 200 || c == fasthttp.StatusSwitchingProtocols {
			return nil
		}
		h.Reset()
	}
	return errors.New("more than 100 interim responses")
}

// noBody: a status that carries no body (RFC 9110 §6.4.1).
func noBody(code int) bool {
	return code < 200 || code == fasthttp.StatusNoContent || code == fasthttp.StatusNotModified
}

// earliest is the deadline of one step: the request's, or the step's own
// timeout from now when that comes first.
func earliest(deadline time.Time, timeout time.Duration) time.Time {
	if timeout > 0 {
		if d := time.Now().Add(timeout); deadline.IsZero() || d.Before(deadline) {
			return d
		}
	}
	return deadline
}

// timeoutAsErrTimeout reports any timeout as fasthttp.ErrTimeout, as
// fasthttp's transport does; but the client's, reading its body
// (ErrClientBody), stays the client's.
func timeoutAsErrTimeout(err error) error {
	if !errors.Is(err, ErrClientBody) && IsTimeout(err) {
		return fasthttp.ErrTimeout
	}
	return err
}

// IsTimeout reports whether err, or any error it wraps, is a timeout.
// Not errors.As alone: that stops at the first error with a Timeout
// method, and a *net.OpError of the upstream's socket ("readfrom")
// wrapping the client's timed-out read says false.
func IsTimeout(err error) bool {
	for err != nil {
		if t, ok := err.(interface{ Timeout() bool }); ok && t.Timeout() {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			return slices.ContainsFunc(u.Unwrap(), IsTimeout)
		default:
			return false
		}
	}
	return false
}

// stream is a response body read from the upstream as the client takes
// it. Its Close, which fasthttp calls once the body is sent, gives the
// connection back when the body was read to its end, else closes it.
type stream struct {
	conn    net.Conn
	client  net.Conn      // the client's connection, when KeepWriting gave it
	write   time.Duration // its write deadline, renewed at each read
	br      *bufio.Reader
	chunks  io.Reader // the chunked decoder; nil for a length or close
	idle    time.Duration
	left    int // bytes still to read for a length; -1 chunked, -2 until close
	capped  int // max_response_bytes; 0 none
	read    int
	done    bool // read to its end: the connection can serve again
	failed  bool // a failure was counted
	errs    errorCounters
	release func(ok bool)
	after   func() // AfterClose's
}

// errChunkSize is a chunk-size line net/http/httputil's reader would
// refuse.
var errChunkSize = errors.New("malformed chunk size")

// firstChunkOK reads ahead to the end of a chunked body's first
// chunk-size line, without consuming it, and checks it as
// httputil.NewChunkedReader will read it.
func firstChunkOK(br *bufio.Reader) error {
	n := max(br.Buffered(), 1)
	for {
		b, err := br.Peek(n)
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return chunkSizeOK(b[:i])
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return errChunkSize // a line longer than the reader holds
			}
			return err
		}
		n = len(b) + 1
	}
}

// chunkSizeOK checks a chunk-size line, up to its LF, as
// net/http/internal's chunked reader does: CRLF and no other CR, under 4
// KiB, trailing spaces and tabs and an extension after ';' dropped, then 1
// to 16 hex digits, and its overhead check (which refuses most sizes past
// 2^62), wrapping int64 arithmetic and all (FuzzChunkSizeOK).
func chunkSizeOK(line []byte) error {
	if len(line) == 0 || bytes.IndexByte(line, '\r') != len(line)-1 || len(line)-1 >= 4096 {
		return errChunkSize
	}
	overhead := int64(len(line)-1) + 2
	line = bytes.TrimRight(line[:len(line)-1], " \t")
	line, _, _ = bytes.Cut(line, []byte{';'})
	if len(line) == 0 || len(line) > 16 {
		return errChunkSize
	}
	var n uint64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return errChunkSize
		}
		n = n<<4 | uint64(c)
	}
	if max(overhead-16-2*int64(n), 0) > 16*1024 {
		return errChunkSize
	}
	return nil
}

var streams = sync.Pool{New: func() any { return new(stream) }}

// Streamed is a response body the pools stream to the client. Given the
// client's connection, each read renews its write deadline by timeout, so
// that a long stream (an SSE feed) is bounded by how long it is idle, not
// by server.write_timeout from its start.
type Streamed interface {
	KeepWriting(client net.Conn, timeout time.Duration)
	// AfterClose runs f once the stream is closed: when fasthttp has
	// written the body, or given up on it.
	AfterClose(f func())
}

// AfterClose implements Streamed.
func (s *stream) AfterClose(f func()) { s.after = f }

// KeepWriting implements Streamed.
func (s *stream) KeepWriting(client net.Conn, timeout time.Duration) {
	s.client, s.write = client, timeout
}

// errResponseTooLarge ends a stream past max_response_bytes.
var errResponseTooLarge = errors.New("upstream response exceeds max_response_bytes")

func (s *stream) Read(p []byte) (int, error) {
	if s.done {
		return 0, io.EOF
	}
	if s.idle > 0 {
		s.conn.SetReadDeadline(time.Now().Add(s.idle))
	}
	if s.client != nil && s.write > 0 {
		s.client.SetWriteDeadline(time.Now().Add(s.write + s.idle))
	}
	var n int
	var err error
	switch {
	case s.chunks != nil:
		n, err = s.chunks.Read(p)
		if err == io.EOF {
			err = skipTrailers(s.br)
			s.done = err == nil
			if s.done {
				err = io.EOF
			}
		}
	case s.left >= 0:
		if s.left == 0 {
			s.done = true
			return 0, io.EOF
		}
		n, err = s.br.Read(p[:min(len(p), s.left)])
		s.left -= n
		if s.left == 0 {
			s.done = true // fasthttp may not read past the length
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	default:
		n, err = s.br.Read(p) // until close: never reused
	}
	s.read += n
	if s.capped > 0 && s.read > s.capped {
		n, err = 0, errResponseTooLarge
	}
	if err != nil && err != io.EOF && !s.failed {
		// After Forward returned: counted here, as Forward would have.
		s.failed = true
		kind := classify(timeoutAsErrTimeout(err))
		if err == errResponseTooLarge {
			kind = KindTooLarge
		}
		if c := s.errs[kind]; c != nil {
			c.Inc()
		}
	}
	return n, err
}

// skipTrailers reads the trailer section after the last chunk, up to its
// empty line; trailers are not forwarded.
func skipTrailers(br *bufio.Reader) error {
	for range 100 {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
	return errors.New("too many trailer lines")
}

// Close gives the connection back, or closes it when the body was not read
// to its end.
func (s *stream) Close() error {
	s.release(s.done)
	after := s.after
	*s = stream{}
	streams.Put(s)
	if after != nil {
		after()
	}
	return nil
}
