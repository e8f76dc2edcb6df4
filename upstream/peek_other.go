//go:build unix && !linux

package upstream

import "syscall"

// peekByte is recvfrom(2) of one byte with MSG_PEEK|MSG_DONTWAIT. Raw
// system calls are Linux's only (OpenBSD's all fail with ENOSYS).
func peekByte(fd uintptr, b *[1]byte) (int, error) {
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n, err
}
