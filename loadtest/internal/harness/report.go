package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Machine is what the numbers depend on.
type Machine struct {
	// NProc is the CPUs the runner may use (nproc).
	NProc int `json:"nproc"`
	// CPU is the first "model name" of /proc/cpuinfo.
	CPU string `json:"cpu"`
	// LoadAvg is /proc/loadavg's 1, 5 and 15 minute loads at the start.
	LoadAvg string `json:"loadavg"`
	// Go is the runner's Go version.
	Go string `json:"go"`
	// Gateway is what `l1gw version` printed.
	Gateway string `json:"gateway"`
	// Date is the start of the run, UTC.
	Date string `json:"date"`
}

// DescribeMachine reads the CPU model and load from /proc and asks the
// gateway binary for its version.
func DescribeMachine(ctx context.Context, bin string) Machine {
	m := Machine{
		NProc: runtime.NumCPU(), CPU: "unknown", LoadAvg: "unknown", Gateway: "unknown",
		Go: runtime.Version(), Date: time.Now().UTC().Format(time.RFC3339),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if model, ok := CPUModel(b); ok {
			m.CPU = model
		}
	}
	m.LoadAvg = LoadAverage()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if b, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		m.Gateway = strings.TrimSpace(string(b))
	}
	return m
}

// CPUModel is the first "model name" of /proc/cpuinfo.
func CPUModel(cpuinfo []byte) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// LoadAverage is the first three fields of /proc/loadavg, or "unknown".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Latency is a latency distribution, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Ms is d in milliseconds, to the microsecond.
func Ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// FormatCodes is "200:4000 429:1000", by status.
func FormatCodes(codes map[string]int) string {
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ":" + strconv.Itoa(codes[k])
	}
	return strings.Join(parts, " ")
}

// WriteReport writes v as <name>.json and md as <name>.md into dir: the
// load runner's report and the chaos suite's.
func WriteReport(dir, name string, v any, md string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s.json: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write %s.md: %w", name, err)
	}
	return nil
}

// DefaultBin is the gateway binary the make targets build and pass.
const DefaultBin = "bin/l1gw"

// MakeCommand is the make invocation that repeats a run from the
// repository's root: make target with args in the variable the target
// passes on (make chaos CHAOS_ARGS='-rate 300'). The make target passes
// -bin bin/l1gw first, so -bin is written only for another binary.
func MakeCommand(target, variable, bin string, args ...string) string {
	if bin != DefaultBin {
		args = append([]string{"-bin " + bin}, args...)
	}
	if len(args) == 0 {
		return "make " + target
	}
	return fmt.Sprintf("make %s %s='%s'", target, variable, strings.Join(args, " "))
}
