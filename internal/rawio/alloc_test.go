//go:build linux && !race

package rawio

import (
	"io"
	"testing"
)

// A read and a write allocate nothing: the gateway's allocation guards
// count on it.
func TestReadAndWriteDoNotAllocate(t *testing.T) {
	c, peer := pair(t)
	go io.Copy(peer, peer)
	msg, got := []byte("0123456789"), make([]byte, 10)
	allocs := testing.AllocsPerRun(1000, func() {
		c.Write(msg)
		io.ReadFull(c, got)
	})
	if allocs != 0 {
		t.Fatalf("a write and a read allocate %.1f times; want 0", allocs)
	}
}
