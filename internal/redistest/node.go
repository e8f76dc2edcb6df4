package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// kind tells a data node (redis-server) from a sentinel.
type kind int

const (
	kindServer kind = iota
	kindSentinel
)

// Node is one redis-server or redis-sentinel process started by the harness.
// Its methods are safe for concurrent use. Stall, Resume, Kill and Stop
// report a failure with Errorf on the test that created the node.
type Node struct {
	name    string
	kind    kind
	dir     string
	log     string
	owner   TB
	topo    *Topo                 // set for the data nodes of a Topology
	cluster *ClusterTopo          // set for the nodes of a Cluster
	conf    func(port int) string // a sentinel's config file; nil for servers

	mu      sync.Mutex
	port    int
	busPort int // a cluster node's cluster bus port; kept across restarts
	proc    *proc
	stalled bool
}

// proc is one run of a node's process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait has returned
	err  error         // cmd.Wait's result; read it only after done
}

// exited reports whether the process has been reaped.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait reports whether the process was reaped within timeout.
func (p *proc) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// newNode makes the node's directory and registers its cleanup: SIGCONT if
// stalled, SIGKILL, and the log tail when the test failed.
func newNode(t TB, name string, k kind, dir string) *Node {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("redistest: make dir for %s: %v", name, err)
	}
	n := &Node{name: name, kind: k, dir: dir, log: filepath.Join(dir, name+".log"), owner: t}
	t.Cleanup(func() { n.cleanup(t) })
	return n
}

// String names the node and its address, for messages.
func (n *Node) String() string { return n.name + " (" + n.Addr() + ")" }

// Addr returns the node's "127.0.0.1:port" address.
func (n *Node) Addr() string { return loopback + ":" + strconv.Itoa(n.Port()) }

// Port returns the node's port; it stays the same across restarts.
func (n *Node) Port() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.port
}

// LogPath returns the file that receives the node's stdout and stderr.
func (n *Node) LogPath() string { return n.log }

// Running reports whether the node's process is alive (stalled counts as
// alive).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited()
}

// Stalled reports whether the node is stopped by Stall and not yet resumed.
func (n *Node) Stalled() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stalled && n.proc != nil && !n.proc.exited()
}

// Client returns a go-redis client with default options for the node,
// closed at the end of the test. For a sentinel, send SENTINEL commands with
// Do.
func (n *Node) Client(t TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: n.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stall freezes the node's process group with SIGSTOP: connections stay
// open and nothing answers, like a hung host.
func (n *Node) Stall() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.signalGroup(syscall.SIGSTOP); err != nil {
		n.owner.Errorf("redistest: stall %s: %v", n.name, err)
		return
	}
	n.stalled = true
}

// Resume continues a stalled node with SIGCONT.
func (n *Node) Resume() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.signalGroup(syscall.SIGCONT); err != nil {
		n.owner.Errorf("redistest: resume %s: %v", n.name, err)
		return
	}
	n.stalled = false
}

// Kill sends SIGKILL to the node's process group and waits until the
// process is gone. Restart brings it back.
func (n *Node) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.signalGroup(syscall.SIGKILL); err != nil {
		n.owner.Errorf("redistest: kill %s: %v", n.name, err)
		return
	}
	n.stalled = false
	if !n.proc.wait(killTimeout) {
		n.owner.Errorf("redistest: kill %s: still not reaped after %v", n.name, killTimeout)
	}
}

// Stop shuts the node down gracefully with SIGTERM (continuing it first if
// stalled) and waits until the process is gone, killing it if that takes
// longer than 15s. Restart brings it back.
func (n *Node) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.exited() {
		n.owner.Errorf("redistest: stop %s: not running", n.name)
		return
	}
	pid := n.proc.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGTERM) // the server stops its own children
	if n.stalled {
		_ = syscall.Kill(-pid, syscall.SIGCONT)
		n.stalled = false
	}
	if !n.proc.wait(stopTimeout) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		n.proc.wait(killTimeout)
		n.owner.Errorf("redistest: stop %s: no exit %v after SIGTERM; killed it", n.name, stopTimeout)
	}
}

// signalGroup sends sig to the running process's group. Call with n.mu held.
func (n *Node) signalGroup(sig syscall.Signal) error {
	if n.proc == nil || n.proc.exited() {
		return fmt.Errorf("not running")
	}
	if err := syscall.Kill(-n.proc.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("send %v: %w", sig, err)
	}
	return nil
}

// cleanup kills the process (continuing it first if stalled) and, when the
// test failed, logs the tail of the node's log.
func (n *Node) cleanup(t TB) {
	n.mu.Lock()
	if p := n.proc; p != nil && !p.exited() {
		pid := p.cmd.Process.Pid
		if n.stalled {
			_ = syscall.Kill(-pid, syscall.SIGCONT)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		if !p.wait(killTimeout) {
			t.Errorf("redistest: cleanup %s: pid %d not reaped after %v", n.name, pid, killTimeout)
		}
	}
	n.mu.Unlock()
	if t.Failed() {
		t.Logf("redistest: last %d lines of %s's log %s:\n%s", logTailLines, n, n.log, logTail(n.log, logTailLines))
	}
}
