package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server starts one standalone redis-server and waits until it answers.
func Server(t TB) *Node {
	t.Helper()
	serverBinary(t)
	n := newNode(t, "redis", kindServer, t.TempDir())
	n.start(t, 0)
	return n
}

// start launches the node on a fresh port, as a replica of replicaOf when
// that is not 0. It tries new ports when the process dies before answering,
// which is what happens when another process took the port meanwhile.
func (n *Node) start(t TB, replicaOf int) {
	t.Helper()
	var err error
	for range startAttempts {
		port := freePort(t)
		if n.cluster != nil {
			n.pickBusPort(t, port)
		}
		if n.conf != nil {
			if err := os.WriteFile(n.confPath(), []byte(n.conf(port)), 0o644); err != nil {
				t.Fatalf("redistest: write config of %s: %v", n.name, err)
			}
		}
		if err = n.launch(t, port, replicaOf); !errors.Is(err, errExited) {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: start %s: %v\nlog tail:\n%s", n.name, err, logTail(n.log, logTailLines))
	}
}

// Restart starts a stopped or killed node again on the same port, with the
// same arguments and directory (a sentinel keeps the config it rewrote).
// A data node of a Topology comes back with --replicaof the current primary
// (per the sentinels, or per ROLE without sentinels) and Restart waits until
// its link is up; it comes back as a primary only when the sentinels still
// name it (restarted before any failover) or no other node is master.
// A Cluster node rejoins from its nodes.conf (same dir, same cluster bus
// port) and Restart waits until the cluster is healthy (see WaitHealthy).
func (n *Node) Restart(t TB) {
	t.Helper()
	if n.Running() {
		t.Fatalf("redistest: restart %s: still running; Kill or Stop it first", n)
	}
	replicaOf := 0
	if n.topo != nil && n.kind == kindServer {
		replicaOf = n.topo.restartPrimaryPort(t, n)
	}
	var err error
	for range restartAttempts {
		if err = n.launch(t, n.Port(), replicaOf); !errors.Is(err, errExited) {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: restart %s: %v\nlog tail:\n%s", n, err, logTail(n.log, logTailLines))
	}
	if replicaOf != 0 {
		n.waitLink(t, replicaOf, linkTimeout)
	}
	if n.cluster != nil {
		n.cluster.WaitHealthy(t)
	}
}

// RestartInPlace starts a stopped or killed data node again on its port
// as a process manager would: with its own arguments, as a primary (no
// --replicaof), whatever the sentinels now say. A primary restarted so
// says master until a sentinel reconfigures it; it does not wait for that.
func (n *Node) RestartInPlace(t TB) {
	t.Helper()
	if n.Running() {
		t.Fatalf("redistest: restart %s in place: still running; Kill or Stop it first", n)
	}
	var err error
	for range restartAttempts {
		if err = n.launch(t, n.Port(), 0); !errors.Is(err, errExited) {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: restart %s in place: %v\nlog tail:\n%s", n, err, logTail(n.log, logTailLines))
	}
}

// waitLink waits up to timeout until the node replicates the server on
// primaryPort with its link up.
func (n *Node) waitLink(t TB, primaryPort int, timeout time.Duration) {
	t.Helper()
	if err := poll(timeout, func() error { return checkReplicaOf(n.Addr(), primaryPort) }); err != nil {
		t.Fatalf("redistest: %s waiting %v for master_link_status:up to port %d: %v", n, timeout, primaryPort, err)
	}
}

// launch runs the process on port and waits until it answers PING as itself.
// errExited means the process died first (port taken, bad config).
func (n *Node) launch(t TB, port, replicaOf int) error {
	t.Helper()
	bin, args := n.argv(t, port, replicaOf)
	p, err := n.spawn(port, bin, args)
	if err != nil {
		return err
	}
	addr := loopback + ":" + strconv.Itoa(port)
	return poll(startTimeout, func() error { return checkUp(p, addr) })
}

// argv returns the program and arguments for one run of the node.
func (n *Node) argv(t TB, port, replicaOf int) (string, []string) {
	t.Helper()
	if n.kind == kindSentinel {
		return sentinelArgv(t, n.confPath())
	}
	aof := "no"
	if n.topo != nil && n.topo.opts.AOF {
		aof = "yes"
	}
	args := []string{
		"--port", strconv.Itoa(port), "--bind", loopback,
		"--save", "", "--appendonly", aof, "--dir", n.dir,
		"--protected-mode", "no", "--daemonize", "no", "--logfile", "",
		"--repl-diskless-sync-delay", "0", // full syncs start at once
		"--enable-debug-command", "local", // DEBUG SLEEP for stall tests
	}
	if replicaOf != 0 {
		args = append(args, "--replicaof", loopback, strconv.Itoa(replicaOf))
	}
	if n.cluster != nil {
		args = append(args, n.clusterArgs()...)
	}
	return serverBinary(t), args
}

// confPath is a sentinel's config file; the sentinel rewrites it.
func (n *Node) confPath() string { return filepath.Join(n.dir, "sentinel.conf") }

// spawn starts the process with output appended to the node's log. The
// process gets its own group and SIGKILL when the test binary dies.
func (n *Node) spawn(port int, bin string, args []string) (*proc, error) {
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== redistest: %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = n.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	n.mu.Lock()
	n.port, n.proc, n.stalled = port, p, false
	n.mu.Unlock()
	return p, nil
}

// checkUp reports nil once addr answers PING and INFO shows p's pid, so a
// server some other test started on the same port is not mistaken for ours.
func checkUp(p *proc, addr string) error {
	if p.exited() {
		return fmt.Errorf("%w before answering on %s: %v", errExited, addr, p.err)
	}
	err := probe(addr, func(ctx context.Context, c *redis.Client) error {
		return c.Ping(ctx).Err()
	})
	if err != nil {
		return fmt.Errorf("PING %s: %w", addr, err)
	}
	kv, err := info(addr, "server")
	if err != nil {
		return err
	}
	if pid := strconv.Itoa(p.cmd.Process.Pid); kv["process_id"] != pid {
		return fmt.Errorf("%s answers as pid %s; ours is %s", addr, kv["process_id"], pid)
	}
	return nil
}
