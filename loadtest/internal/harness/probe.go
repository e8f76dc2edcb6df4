package harness

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// ProbeEvery is the probe's pause between PINGs: a silence of Redis
// shows in a PING only from when the next one is sent, so a worst PING of
// w fits a silence of up to w + ProbeEvery, plus the pause's overrun.
const ProbeEvery = 5 * time.Millisecond

// SilenceFitsMs is the longest silence of Redis, in ms, that a worst PING
// of worstMs fits when the probe's pauses overran by up to lateMs: the
// PING that saw it went out a pause, and an overrun, after the last
// answer.
func SilenceFitsMs(worstMs, lateMs float64) float64 {
	return worstMs + float64(ProbeEvery)/float64(time.Millisecond) + lateMs
}

// ProbeResult is what a Probe saw.
type ProbeResult struct {
	Pings int64 `json:"pings"`
	// WorstMs is the longest round trip, in ms. WorstAtMs is when its
	// PING was sent, in ms since the first; WorstCut: the probe was
	// stopped before that PING was answered (the wait so far counts).
	// SpanMs is from the first PING to the stop.
	WorstMs   float64 `json:"worst_ms"`
	WorstAtMs float64 `json:"worst_at_ms"`
	WorstCut  bool    `json:"worst_cut,omitempty"`
	SpanMs    float64 `json:"span_ms"`
	// WorstLateMs is the longest a sleep between PINGs overran, in ms:
	// how long the CPU ran nothing of the probe's, nor of Redis'.
	WorstLateMs float64 `json:"worst_late_ms"`
	// Realtime: the probing thread ran at SCHED_FIFO (root only);
	// otherwise its own waits for the CPU count too.
	Realtime bool `json:"realtime"`
	// WorstRetrans is how many segments the probe's own socket
	// retransmitted while the worst PING was out, and WorstRtoMs its
	// retransmission timeout then (TCP_INFO): a PING lost on the way and
	// sent again shows here. A lost reply is Redis' socket's to resend and
	// shows only in the host's TCP counters.
	WorstRetrans uint32  `json:"worst_retrans,omitempty"`
	WorstRtoMs   float64 `json:"worst_rto_ms,omitempty"`
}

// slowRetransMs: after a PING this slow the probe reads its socket's
// TCP_INFO. A retransmission waits at least a tail-loss probe's timeout
// (10 ms and more), so a faster PING had none, and the probe does not
// spend a system call on every PING.
const slowRetransMs = 1

// Probe PINGs the redis-server at addr every ProbeEvery until ctx ends,
// from a thread at real-time priority where the process may set it
// (root): how promptly Redis itself answers, apart from any client's
// load. It also times its sleeps between PINGs: a real-time thread wakes
// on time unless its CPU ran nothing at all, Redis included (a virtual
// CPU the host did not run), which a PING sees only if it is out then.
// ready runs once it is connected. It uses blocking system calls on its
// goroutine's thread, locked meanwhile: a real-time thread that blocks in
// the kernel is woken the moment the reply lands, where one parked in
// Go's poller would wait for an ordinary thread to notice. It gives the
// thread back at its usual priority. (It left it locked once, so that the
// thread ended with the goroutine; a redis-server started from that
// thread with Pdeathsig, as redistest starts it, was killed then.)
func Probe(ctx context.Context, addr string, ready func()) (res ProbeResult, err error) {
	if err := CheckLoopback(addr); err != nil {
		return res, err
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return res, fmt.Errorf("probe address: %w", err)
	}
	runtime.LockOSThread()
	was, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return res, fmt.Errorf("sched_getattr: %w", err)
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 10}
	res.Realtime = unix.SchedSetAttr(0, &attr, 0) == nil
	defer func() {
		// Unlocked only at its old priority: a real-time thread must not
		// go on to run other goroutines. Failing that, it stays locked and
		// ends with the goroutine.
		if !res.Realtime || unix.SchedSetAttr(0, was, 0) == nil {
			runtime.UnlockOSThread()
		}
	}()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return res, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	// Reads wake up this often to see whether the probe was stopped, so
	// that a Redis silent across the end of a run does not hold it.
	timeout := unix.NsecToTimeval(int64(probeWake))
	for _, opt := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &timeout); err != nil {
			return res, fmt.Errorf("socket timeout: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return res, fmt.Errorf("TCP_NODELAY: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return res, fmt.Errorf("connect to %s: %w", addr, err)
	}
	retrans, _, err := tcpRetrans(fd)
	if err != nil {
		return res, err
	}
	ready()
	ping := []byte("PING\r\n")
	buf := make([]byte, 64)
	first := time.Now()
	defer func() { res.SpanMs = Ms(time.Since(first)) }()
	for ctx.Err() == nil {
		t := time.Now()
		if _, err := writeAll(ctx, fd, ping); err != nil {
			return res, fmt.Errorf("write: %w", err)
		}
		answered, err := readPong(ctx, fd, buf)
		if err != nil {
			return res, err
		}
		// Stopped while Redis had not answered: the wait so far is a
		// lower bound of this round trip, and counts.
		rt := Ms(time.Since(t))
		var sent uint32
		var rto float64
		if rt >= slowRetransMs {
			now, r, err := tcpRetrans(fd)
			if err != nil {
				return res, err
			}
			sent, rto, retrans = now-retrans, r, now
		}
		if rt > res.WorstMs {
			res.WorstMs, res.WorstAtMs, res.WorstCut = rt, Ms(t.Sub(first)), !answered
			res.WorstRetrans, res.WorstRtoMs = sent, rto
		}
		if !answered {
			break
		}
		res.Pings++
		late, err := sleepLate(ProbeEvery)
		if err != nil {
			return res, err
		}
		res.WorstLateMs = max(res.WorstLateMs, Ms(late))
	}
	return res, nil
}

// tcpRetrans is how many segments the socket fd has retransmitted in
// all, and its retransmission timeout in ms.
func tcpRetrans(fd int) (total uint32, rtoMs float64, err error) {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, 0, fmt.Errorf("TCP_INFO: %w", err)
	}
	return info.Total_retrans, float64(info.Rto) / 1000, nil
}

// sleepLate sleeps d and returns how long past d it woke. It sleeps to a
// deadline on the monotonic clock, so that a signal does not lengthen it.
func sleepLate(d time.Duration) (time.Duration, error) {
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		return 0, fmt.Errorf("clock_gettime: %w", err)
	}
	deadline := unix.NsecToTimespec(now.Nano() + int64(d))
	for {
		err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &deadline, nil)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return 0, fmt.Errorf("clock_nanosleep: %w", err)
		}
	}
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		return 0, fmt.Errorf("clock_gettime: %w", err)
	}
	return time.Duration(now.Nano() - deadline.Nano()), nil
}

// probeWake bounds how long the probe blocks in a read or a write.
const probeWake = 100 * time.Millisecond

// writeAll writes b to fd, giving up only when ctx ends.
func writeAll(ctx context.Context, fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := unix.Write(fd, b[n:])
		switch {
		case retry(err) && ctx.Err() == nil:
			continue
		case err != nil:
			return n, err
		}
		n += k
	}
	return n, nil
}

// readPong reads "+PONG\r\n" from fd. answered is false when ctx ended
// before the reply did.
func readPong(ctx context.Context, fd int, buf []byte) (answered bool, err error) {
	n := 0
	for n == 0 || buf[n-1] != '\n' {
		if n == len(buf) {
			return false, fmt.Errorf("reply too long: %q", buf[:n])
		}
		k, err := unix.Read(fd, buf[n:])
		switch {
		case retry(err):
			if ctx.Err() != nil {
				return false, nil
			}
			continue
		case err != nil:
			return false, fmt.Errorf("read: %w", err)
		case k == 0:
			return false, errors.New("read: Redis closed the connection")
		}
		n += k
	}
	if string(buf[:n]) != "+PONG\r\n" {
		return false, fmt.Errorf("PING answered %q", buf[:n])
	}
	return true, nil
}

// retry: a blocking call woke up (a signal, or probeWake) with nothing
// done.
func retry(err error) bool {
	return errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN)
}
