package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// UserHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 for user space on every architecture (what
// `getconf CLK_TCK` prints).
const UserHZ = 100

// ProcCPUTicks is utime + stime of process pid (all its threads), in
// 1/UserHZ seconds.
func ProcCPUTicks(pid int) (int64, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read process stat: %w", err)
	}
	t, err := CPUTicks(stat)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return t, nil
}

// CPUTicks is utime + stime (fields 14 and 15) of a /proc/<pid>/stat
// file. The fields are counted after the command name, which is in
// parentheses and may hold spaces and parentheses.
func CPUTicks(stat []byte) (int64, error) {
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

// StatusField is the value of the "Name:\tvalue" line of a
// /proc/<pid>/status file.
func StatusField(status []byte, name string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("no %s line", name)
}

// VmRSS is the "VmRSS:  1234 kB" line of a /proc/<pid>/status file, in kB.
func VmRSS(status []byte) (int64, error) {
	v, err := StatusField(status, "VmRSS")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(v)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("VmRSS line %q; want \"VmRSS: N kB\"", v)
	}
	return strconv.ParseInt(f[0], 10, 64)
}
