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
// which Linux fixes at 100 for user space on every architecture.
const userHZ = 100

// procSample is a process's memory and CPU use at one moment.
type procSample struct {
	rssKB    int64 // VmRSS
	cpuTicks int64 // utime + stime, in 1/userHZ seconds
}

// sampleProc reads pid's VmRSS from /proc/<pid>/status and utime+stime
// from /proc/<pid>/stat.
func sampleProc(pid int) (procSample, error) {
	var s procSample
	dir := "/proc/" + strconv.Itoa(pid)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s, fmt.Errorf("read process status: %w", err)
	}
	if s.rssKB, err = vmRSS(status); err != nil {
		return s, fmt.Errorf("%s/status: %w", dir, err)
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, fmt.Errorf("read process stat: %w", err)
	}
	if s.cpuTicks, err = cpuTicks(stat); err != nil {
		return s, fmt.Errorf("%s/stat: %w", dir, err)
	}
	return s, nil
}

// vmRSS is the "VmRSS:  1234 kB" line of /proc/<pid>/status, in kB.
func vmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q; want \"VmRSS: N kB\"", sc.Text())
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("no VmRSS line")
}

// cpuTicks is utime + stime (fields 14 and 15) of /proc/<pid>/stat. The
// fields are counted after the command name, which is in parentheses and
// may hold spaces.
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
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return utime + stime, nil
}

// checkLoopback refuses any address but 127.0.0.1:port: the runner
// attacks nothing else.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host != "127.0.0.1" {
		return fmt.Errorf("address %q is not 127.0.0.1; the load test attacks only loopback", addr)
	}
	return nil
}
