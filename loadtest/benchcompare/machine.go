package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// Machine describes where the run took place.
type Machine struct {
	NumCPU     int    `json:"nproc"`
	CPUModel   string `json:"cpu_model"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	Kernel     string `json:"kernel"`
	Gateway    string `json:"gateway"`
	// LoadStart and LoadEnd are /proc/loadavg's 1, 5 and 15 minute load
	// averages before and after the run: anything else running skews it.
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

// describeMachine gathers the Machine; what it cannot find it says so in
// the field.
func describeMachine(ctx context.Context, bin string) Machine {
	m := Machine{
		NumCPU:     runtime.NumCPU(), // as at start-up, before any pinning
		CPUModel:   "unknown CPU model",
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		Kernel:     "unknown",
		Gateway:    gatewayVersion(ctx, bin),
		LoadStart:  harness.LoadAverage(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if model, ok := harness.CPUModel(b); ok {
			m.CPUModel = model
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	return m
}

// gatewayVersion is the output of `bin version`, or why there is none.
func gatewayVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return fmt.Sprintf("%s (`%s version` failed: %v)", bin, bin, err)
	}
	return fmt.Sprintf("%s (%s)", strings.TrimSpace(string(out)), bin)
}
