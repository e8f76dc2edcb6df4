//go:build linux

package rawio

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
)

// pair returns a loopback connection wrapped for raw system calls (under
// the race detector too: these tests order their goroutines themselves),
// and its peer's end as the net package gives it.
func pair(t *testing.T) (*Conn, *net.TCPConn) {
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
	w, ok := wrap(c, true).(*Conn)
	if !ok {
		t.Fatalf("wrap(%T) = %T; want *Conn", c, wrap(c, true))
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
	if n, err := c.Write(nil); n != 0 || err != nil {
		t.Fatalf("Write(nil) = %d, %v; want 0, nil", n, err)
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
	big := make([]byte, 64<<20) // before the deadline: zeroing it takes a while
	c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
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
	if _, err := c.Read(nil); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("an empty Read after Close: %v; want net.ErrClosed, as a TCPConn says", err)
	}
}

func TestWrapLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := Wrap(a); got != a {
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
var _ io.ReaderFrom = (*Conn)(nil)

// Reads from two goroutines at once take turns: every byte sent is read
// once. Run under the race detector, an unguarded call would be a race.
func TestConcurrentReadsTakeTurns(t *testing.T) {
	c, peer := pair(t)
	const total = 1 << 20
	go func() {
		b := make([]byte, total)
		for i := range b {
			b[i] = byte(i % 251)
		}
		peer.Write(b)
		peer.CloseWrite()
	}()
	var counts [2][251]int
	done := make(chan struct{}, 2)
	for g := range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			buf := make([]byte, 1000)
			for {
				n, err := c.Read(buf)
				for _, x := range buf[:n] {
					counts[g][x]++
				}
				if err != nil {
					return
				}
			}
		}()
	}
	<-done
	<-done
	for x := range 251 {
		want := total / 251
		if x < total%251 {
			want++
		}
		if got := counts[0][x] + counts[1][x]; got != want {
			t.Fatalf("byte %d read %d times; want %d", x, got, want)
		}
	}
}

// Wrap makes raw calls but under the race detector, which would lose the
// order a socket gives a write and the read of it.
func TestWrapIsPlainUnderTheRaceDetector(t *testing.T) {
	c, _ := pair(t)
	w, ok := Wrap(c.TCPConn).(*Conn)
	if !ok || w.plain != raceEnabled {
		t.Fatalf("Wrap: %T, plain %v; want *Conn, plain %v", Wrap(c.TCPConn), w != nil && w.plain, raceEnabled)
	}
}
