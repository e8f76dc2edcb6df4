// Package redistest starts real redis-server and redis-sentinel processes
// for tests: a standalone server (Server), a primary with replicas and
// sentinels (Topology) or a Redis Cluster of masters and replicas (Cluster).
// Every process listens on a free loopback port, lives in t.TempDir(), logs
// to a file there and is killed by t.Cleanup, even when the test fails; a
// failed test gets the tail of every node's log.
//
// Nodes can be stalled (SIGSTOP), resumed, killed, stopped and restarted on
// the same port, which is how the failure modes of the reliability research
// (section 3) are injected. Only tests and the chaos suite's command
// (loadtest/chaos) import this package; the command passes its own TB.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// TB is the part of testing.TB this package uses: a *testing.T, or the
// chaos command's stand-in for one. Fatalf must not return.
type TB interface {
	Helper()
	Cleanup(func())
	TempDir() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
}

const (
	startTimeout     = 5 * time.Second  // process up and answering PING
	linkTimeout      = 15 * time.Second // replica's master_link_status:up
	discoveryTimeout = 20 * time.Second // sentinels know every replica and sentinel
	failoverTimeout  = 30 * time.Second // sentinels agree on a new primary
	stopTimeout      = 15 * time.Second // SIGTERM until the process is gone
	killTimeout      = 10 * time.Second // SIGKILL until the process is reaped
	pollInterval     = 25 * time.Millisecond
	probeTimeout     = 500 * time.Millisecond // one probe command
	startAttempts    = 5                      // fresh ports tried by a first start
	restartAttempts  = 3                      // same-port tries by Restart
	logTailLines     = 40
	loopback         = "127.0.0.1"
)

// errExited reports that a process died before it answered.
var errExited = errors.New("redistest: process exited")

const missingServer = "redis-server not found: run `make test` (it installs " +
	"redis-server and redis-sentinel) or apt-get install redis-server redis-sentinel"

// serverBinary returns the path of redis-server or fails the test.
func serverBinary(t TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("%s (%v)", missingServer, err)
	}
	return path
}

// sentinelArgv returns the program and arguments that run a sentinel with
// conf: redis-sentinel from PATH, else redis-server --sentinel.
func sentinelArgv(t TB, conf string) (string, []string) {
	t.Helper()
	if path, err := exec.LookPath("redis-sentinel"); err == nil {
		return path, []string{conf}
	}
	return serverBinary(t), []string{conf, "--sentinel"}
}

// freePort returns a loopback port that was free a moment ago, below the
// kernel's ephemeral range: a node restarted on its port must find it
// free, and between the kill and the restart any process's outgoing
// connection (a gateway, a replica, a sentinel) could otherwise be given
// that port as its own, and the restart would fail with "Address already
// in use" (seen in CI, scenario 9 of the chaos suite). Another process may
// still take the port before the node binds it; start tries again.
func freePort(t TB) int {
	t.Helper()
	lo, hi := fixedPorts()
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(port)))
		if err == nil {
			l.Close()
			return port
		}
	}
	l, err := net.Listen("tcp", loopback+":0") // a crowded range: any port will do
	if err != nil {
		t.Fatalf("redistest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// fixedPorts is the range freePort draws from: below the ephemeral ports
// (/proc/sys/net/ipv4/ip_local_port_range; 32768 where it cannot be read),
// above the well-known and registered-by-habit low ports.
func fixedPorts() (lo, hi int) {
	lo, hi = 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lo+1000 {
				hi = n
			}
		}
	}
	return lo, hi
}

// poll calls cond every pollInterval until it returns nil or timeout has
// passed, and returns cond's last error. An error wrapping errExited ends
// the wait at once: a dead process will not come up.
func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || errors.Is(err, errExited) {
			return err
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(pollInterval)
	}
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
