//go:build linux

package upstream

import (
	"syscall"
	"unsafe"
)

// peekByte is recvfrom(2) of one byte with MSG_PEEK|MSG_DONTWAIT, raw, as
// rawio's reads are (see internal/rawio): it never waits.
func peekByte(fd uintptr, b *[1]byte) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
