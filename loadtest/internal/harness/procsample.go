package harness

import (
	"fmt"
	"os"
	"strconv"
)

// ProcSample is a process's memory and CPU use at one moment.
type ProcSample struct {
	// RSSKB is VmRSS.
	RSSKB int64
	// CPUTicks is utime + stime, in 1/UserHZ seconds.
	CPUTicks int64
}

// SampleProc reads pid's VmRSS from /proc/<pid>/status and utime+stime
// from /proc/<pid>/stat.
func SampleProc(pid int) (ProcSample, error) {
	var s ProcSample
	dir := "/proc/" + strconv.Itoa(pid)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s, fmt.Errorf("read process status: %w", err)
	}
	if s.RSSKB, err = VmRSS(status); err != nil {
		return s, fmt.Errorf("%s/status: %w", dir, err)
	}
	if s.CPUTicks, err = ProcCPUTicks(pid); err != nil {
		return s, err
	}
	return s, nil
}
