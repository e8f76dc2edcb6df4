//go:build linux

package rawio_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/rawio"
)

// pair returns a loopback connection wrapped by rawio.Wrap, and its
// peer's end as the net package gives it.
func pair(t *testing.T) (*rawio.Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	w, ok := rawio.Wrap(c).(*rawio.Conn)
	if !ok {
		t.Fatalf("Wrap(%T) = %T; want *rawio.Conn", c, rawio.Wrap(c))
	}
	return w, peer.(*net.TCPConn)
}

func TestReadAndWriteCarryTheStream(t *testing.T) {
	c, peer := pair(t)
	if n, err := c.Write([]byte("ping")); n != 4 || err != nil {
		t.Fatalf("Write = %d, %v; want 4, nil", n, err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "ping" {
		t.Fatalf("the peer read %q, %v; want ping", got, err)
	}
	peer.Write([]byte("pong"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "pong" {
		t.Fatalf("read %q, %v; want pong", got, err)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
	}
	peer.CloseWrite()
	if n, err := c.Read(got); n != 0 || err != io.EOF {
		t.Fatalf("Read at the peer's end = %d, %v; want 0, io.EOF", n, err)
	}
}

// A write larger than the socket buffers waits for the reader (EAGAIN,
// then the poller) and delivers every byte in order.
func TestALargeWriteWaitsForTheReader(t *testing.T) {
	c, peer := pair(t)
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	sum := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		buf := make([]byte, 4096)
		for {
			n, err := peer.Read(buf)
			h.Write(buf[:n])
			if err != nil {
				break
			}
			time.Sleep(10 * time.Microsecond) // slower than the writer
		}
		var s [32]byte
		copy(s[:], h.Sum(nil))
		sum <- s
	}()
	n, err := c.Write(data)
	if n != len(data) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(data))
	}
	c.CloseWrite()
	if got, want := <-sum, sha256.Sum256(data); got != want {
		t.Fatal("the peer received other bytes than were written")
	}
}

func TestDeadlinesEndReadsAndWrites(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v; want a timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || oe.Addr == nil {
		t.Fatalf("Read's error %#v; want a *net.OpError of op read, with the peer's address", err)
	}
	// The peer never reads: the write fills both buffers and waits, until
	// its deadline.
	c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	big := make([]byte, 64<<20)
	n, err := c.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= len(big) {
		t.Fatalf("Write past its deadline = %d, %v; want part of it and a timeout", n, err)
	}
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write's error %#v; want a *net.OpError of op write", err)
	}
}

func TestAClosedOrResetConnSaysSo(t *testing.T) {
	c, peer := pair(t)
	peer.SetLinger(0)
	peer.Close() // an RST
	time.Sleep(20 * time.Millisecond)
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after the peer's reset: %v; want ECONNRESET", err)
	}
	c.Close()
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v; want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v; want net.ErrClosed", err)
	}
}

func TestWrapLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := rawio.Wrap(a); got != a {
		t.Fatalf("Wrap(net.Pipe) = %T; want it as it is", got)
	}
}

// Several reads and writes in turn, each direction from its own
// goroutine, as a proxied connection is used.
func TestReadsAndWritesInTurn(t *testing.T) {
	c, peer := pair(t)
	go io.Copy(peer, peer) // an echo
	msg := bytes.Repeat([]byte("abc"), 1000)
	got := make([]byte, len(msg))
	for i := range 100 {
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo %d: %v, equal %v", i, err, bytes.Equal(got, msg))
		}
	}
}

// io.Copy into a Conn goes through the TCPConn's ReadFrom, which writes
// each read as it comes: a streamed request body is not held back until
// a buffer fills.
var _ io.ReaderFrom = (*rawio.Conn)(nil)
