package main

import (
	"fmt"
	"os"
	"slices"
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

// tcpWatched are the host's TCP counters a measurement records: segments
// sent again (RetransSegs), retransmission timeouts (TCPTimeouts, SYNs
// among them: TCPSynRetrans) and tail-loss probes (TCPLossProbes). On
// loopback a lost or late segment waits for one of these to be sent
// again.
var tcpWatched = []string{"RetransSegs", "TCPTimeouts", "TCPSynRetrans", "TCPLossProbes"}

// tcpCounters picks tcpWatched out of files in the format of
// /proc/net/snmp and /proc/net/netstat: a line of names after a prefix
// ("Tcp:"), then a line of values after the same prefix.
func tcpCounters(files ...[]byte) (map[string]int64, error) {
	out := map[string]int64{}
	for _, file := range files {
		lines := strings.Split(strings.TrimSpace(string(file)), "\n")
		for i := 0; i+1 < len(lines); i += 2 {
			names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			if len(names) != len(values) || len(names) == 0 || names[0] != values[0] {
				return nil, fmt.Errorf("TCP counters: line %q does not name line %q", lines[i], lines[i+1])
			}
			for j, name := range names[1:] {
				if !slices.Contains(tcpWatched, name) {
					continue
				}
				v, err := strconv.ParseInt(values[j+1], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("TCP counter %s %q: not a count", name, values[j+1])
				}
				out[name] = v
			}
		}
	}
	return out, nil
}

// readTCP is tcpCounters of this machine.
func readTCP() (map[string]int64, error) {
	var files [][]byte
	for _, f := range []string{"/proc/net/snmp", "/proc/net/netstat"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		files = append(files, b)
	}
	return tcpCounters(files...)
}

// grown is what each counter gained from before to after, the ones that
// did only.
func grown(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}
