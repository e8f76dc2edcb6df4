package harness

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/l1gw/l1gw/internal/testkit"
)

// init locks the test binary's main goroutine to the main thread, so
// that every other goroutine runs on other threads: Go ends one of those
// when a goroutine exits locked to it, as the probe once did, but never
// the main thread, where the test below would pass whatever the probe did.
func init() { runtime.LockOSThread() }

// pongServer answers every line it reads with +PONG, as Redis answers
// PING, on a loopback port.
func pongServer(t *testing.T) string {
	return testkit.Listen(t, func(c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			if _, err := c.Write([]byte("+PONG\r\n")); err != nil {
				return
			}
		}
	})
}

// TestProbeGivesItsThreadBack: a probe run on a goroutine's thread leaves
// it at its old priority, and alive when that goroutine ends. It once
// left the thread locked, so that the thread ended with the goroutine, and
// a child started from it with Pdeathsig (as redistest starts
// redis-server) was killed: scenario 11 of the chaos suite lost its Redis.
func TestProbeGivesItsThreadBack(t *testing.T) {
	addr := pongServer(t)
	var child *exec.Cmd
	var res ProbeResult
	var perr error
	policyBefore, policyAfter := -1, -1
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if a, err := unix.SchedGetAttr(0, 0); err == nil {
			policyBefore = int(a.Policy)
		}
		child = exec.Command("sleep", "30")
		child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := child.Start(); err != nil {
			perr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		res, perr = Probe(ctx, addr, func() {})
		if a, err := unix.SchedGetAttr(0, 0); err == nil {
			policyAfter = int(a.Policy)
		}
	}()
	<-done
	if perr != nil {
		if child != nil && child.Process != nil {
			child.Process.Kill()
			child.Wait()
		}
		t.Fatal(perr)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	defer func() {
		child.Process.Kill()
		<-exited
	}()
	if res.Pings == 0 {
		t.Fatalf("probe: %+v; want PINGs answered", res)
	}
	if policyAfter != policyBefore {
		t.Errorf("the thread's scheduling policy after the probe: %d; want %d, as before (real-time: %v)", policyAfter, policyBefore, res.Realtime)
	}
	select {
	case err := <-exited:
		exited <- err // for the deferred wait
		t.Fatalf("the child started from the probe's thread ended once that goroutine did (%v): the thread ended with it", err)
	case <-time.After(300 * time.Millisecond):
	}
}
