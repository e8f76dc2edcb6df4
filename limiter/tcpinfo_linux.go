package limiter

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// socketCounters asks the kernel how many bytes have ever left and
// arrived on the TCP socket fd (TCP_INFO's tcpi_bytes_sent and
// tcpi_bytes_received, Linux 4.19+), whether or not the process has read
// them yet. ok is false where it cannot tell.
func socketCounters(fd int) (sent, received uint64, ok bool) {
	var info unix.TCPInfo
	size := uint32(unsafe.Sizeof(info))
	_, _, errno := syscall.RawSyscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), syscall.IPPROTO_TCP, syscall.TCP_INFO,
		uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 || size < uint32(unsafe.Offsetof(info.Bytes_sent)+8) {
		return 0, 0, false
	}
	return info.Bytes_sent, info.Bytes_received, true
}
