package limiter

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tcpInfo asks the kernel for the TCP_INFO of socket fd, and how many of
// its bytes the kernel filled in.
func tcpInfo(fd int) (info unix.TCPInfo, size uintptr, ok bool) {
	n := uint32(unsafe.Sizeof(info))
	_, _, errno := syscall.RawSyscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), syscall.IPPROTO_TCP, syscall.TCP_INFO,
		uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&n)), 0)
	return info, uintptr(n), errno == 0
}

// socketCounters asks the kernel how many bytes have ever left and
// arrived on the TCP socket fd (TCP_INFO's tcpi_bytes_sent and
// tcpi_bytes_received, Linux 4.19+), whether or not the process has read
// them yet. ok is false where it cannot tell.
func socketCounters(fd int) (sent, received uint64, ok bool) {
	info, size, ok := tcpInfo(fd)
	if !ok {
		return 0, 0, false
	}
	return countersOf(&info, size)
}

// countersOf is socketCounters' answer from a TCP_INFO of size bytes.
func countersOf(info *unix.TCPInfo, size uintptr) (sent, received uint64, ok bool) {
	if size < unsafe.Offsetof(info.Bytes_sent)+8 {
		return 0, 0, false
	}
	return info.Bytes_sent, info.Bytes_received, true
}

// socketUnsent asks the kernel how many bytes written to the TCP socket fd
// it holds unsent (TCP_INFO's tcpi_notsent_bytes, Linux 4.6+): bytes a
// write handed over that the peer's window has no room for yet. ok is
// false where it cannot tell.
func socketUnsent(fd int) (n uint32, ok bool) {
	info, size, ok := tcpInfo(fd)
	if !ok || size < unsafe.Offsetof(info.Notsent_bytes)+4 {
		return 0, false
	}
	return info.Notsent_bytes, true
}

// TCP states (include/net/tcp_states.h).
const (
	tcpEstablished = 1
	tcpCloseWait   = 8
)

// socketState asks the kernel, in one TCP_INFO, whether the TCP socket fd
// is connected (the peer's host answered the SYN; it may have closed
// since, but it answered), known false where the kernel cannot tell; and
// its byte counters, as socketCounters gives them.
func socketState(fd int) (connected, known bool, sent, received uint64, counted bool) {
	info, size, ok := tcpInfo(fd)
	if !ok || size < 1 {
		return false, false, 0, 0, false
	}
	sent, received, counted = countersOf(&info, size)
	return info.State == tcpEstablished || info.State == tcpCloseWait, true, sent, received, counted
}
