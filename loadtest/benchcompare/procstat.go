package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// cpuMicrosPerRequest is the CPU time between two tick samples, in µs,
// divided by requests; ok is false when there were no requests.
func cpuMicrosPerRequest(before, after, requests int64) (float64, bool) {
	if requests <= 0 || after < before {
		return 0, false
	}
	return float64(after-before) * (1e6 / harness.UserHZ) / float64(requests), true
}

// stealTicks is the steal time of each CPU in a /proc/stat file, in
// ticks by CPU number: the time the hypervisor ran something else while
// that virtual CPU had work. A CPU missing from it, or a kernel that
// does not count steal, reads 0.
func stealTicks(stat []byte) (map[int]int64, error) {
	out := map[int]int64{}
	for line := range strings.SplitSeq(string(stat), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		cpu, err := strconv.Atoi(f[0][len("cpu"):])
		if err != nil {
			return nil, fmt.Errorf("/proc/stat line %q: %w", line, err)
		}
		if len(f) < 9 {
			out[cpu] = 0 // before steal was counted
			continue
		}
		v, err := strconv.ParseInt(f[8], 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("/proc/stat %s steal %q: not a count", f[0], f[8])
		}
		out[cpu] = v
	}
	return out, nil
}

// readSteal is stealTicks of this machine's /proc/stat.
func readSteal() (map[int]int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, fmt.Errorf("read /proc/stat: %w", err)
	}
	return stealTicks(b)
}

// stealMs is how much steal cpu gained from before to after, in ms; nil
// for a CPU that is not pinned (cpu < 0).
func stealMs(before, after map[int]int64, cpu int) *float64 {
	if cpu < 0 {
		return nil
	}
	v := float64(after[cpu]-before[cpu]) * 1000 / harness.UserHZ
	return &v
}
