package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 for user space on every architecture (what
// `getconf CLK_TCK` prints).
const userHZ = 100

// cpuTicksOf is utime + stime of process pid (all its threads), in
// 1/userHZ seconds.
func cpuTicksOf(pid int) (int64, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read process stat: %w", err)
	}
	t, err := cpuTicks(stat)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return t, nil
}

// cpuTicks is utime + stime (fields 14 and 15) of /proc/<pid>/stat. The
// fields are counted after the command name, which is in parentheses and
// may hold spaces and parentheses.
func cpuTicks(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no ')' after the command name")
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name; want at least 13", len(f))
	}
	utime, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil || utime < 0 {
		return 0, fmt.Errorf("utime %q: not a tick count", f[11])
	}
	stime, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil || stime < 0 {
		return 0, fmt.Errorf("stime %q: not a tick count", f[12])
	}
	return utime + stime, nil
}

// statusField is the value of the "Name:\tvalue" line of a
// /proc/<pid>/status file.
func statusField(status []byte, name string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("no %s line", name)
}

// checkLoopback refuses any address but 127.0.0.1:port: the runner
// attacks nothing else.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host != "127.0.0.1" {
		return fmt.Errorf("address %q is not 127.0.0.1; benchcompare targets only loopback", addr)
	}
	return nil
}

// cpuMicrosPerRequest is the CPU time between two tick samples, in µs,
// divided by requests; ok is false when there were no requests.
func cpuMicrosPerRequest(before, after, requests int64) (float64, bool) {
	if requests <= 0 || after < before {
		return 0, false
	}
	return float64(after-before) * (1e6 / userHZ) / float64(requests), true
}
