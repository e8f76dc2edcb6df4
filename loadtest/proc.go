package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// procSample is a process's memory and CPU use at one moment.
type procSample struct {
	rssKB    int64 // VmRSS
	cpuTicks int64 // utime + stime, in 1/harness.UserHZ seconds
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
	if s.rssKB, err = harness.VmRSS(status); err != nil {
		return s, fmt.Errorf("%s/status: %w", dir, err)
	}
	if s.cpuTicks, err = harness.ProcCPUTicks(pid); err != nil {
		return s, err
	}
	return s, nil
}
