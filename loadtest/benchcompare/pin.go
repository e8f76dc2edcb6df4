package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// pinning says which CPU the system under test and the runner use; both
// are -1 when nothing is pinned.
type pinning struct {
	sut    int // the forwarder or gateway process
	runner int // this process (load generator and upstream) and redis-server
	desc   string
}

// on reports whether CPUs are pinned.
func (p pinning) on() bool { return p.sut >= 0 }

// setupPinning pins every thread of this process to the second CPU it may
// run on and keeps the first for the system under test. With fewer than two
// CPUs it pins nothing.
func setupPinning() (pinning, error) {
	none := pinning{sut: -1, runner: -1}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return none, fmt.Errorf("read CPU affinity: %w", err)
	}
	cpus := cpuList(&set)
	if len(cpus) < 2 || runtime.NumCPU() < 2 {
		none.desc = fmt.Sprintf("none: %d CPU(s) available, every process shares them", len(cpus))
		return none, nil
	}
	p := pinning{sut: cpus[0], runner: cpus[1]}
	if err := pinSelf(p.runner); err != nil {
		return none, err
	}
	// The runner has one CPU: as many Ps would only time-share it.
	runtime.GOMAXPROCS(1)
	p.desc = fmt.Sprintf("system under test (forwarder or gateway) on CPU %d; runner (load generator, upstream) and redis-server (nice -10, where root) on CPU %d. "+
		"The runner sets sched_setaffinity on every thread in /proc/self/task; each child is forked from an OS-locked thread "+
		"pinned to the child's CPU, so all its threads inherit it (checked in /proc/<pid>/task/*/status)", p.sut, p.runner)
	return p, nil
}

// cpuList is the CPUs in set, ascending.
func cpuList(set *unix.CPUSet) []int {
	var cpus []int
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

// pinSelf sets the affinity of every thread of this process to cpu. A
// thread inherits its creator's affinity, so it repeats until a pass finds
// no thread it has not pinned yet.
func pinSelf(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	pinned := map[int]bool{}
	for range 20 {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("list threads: %w", err)
		}
		fresh := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || pinned[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pin thread %d to CPU %d: %w", tid, cpu, err)
			}
			pinned[tid] = true
			fresh++
		}
		if fresh == 0 {
			return nil
		}
	}
	return fmt.Errorf("pin to CPU %d: threads kept appearing", cpu)
}

// startOn starts cmd with every thread of the child on cpu (no pinning
// when cpu < 0). The fork happens on this goroutine's OS thread, pinned to
// cpu for the time of the fork and restored after. The thread survives
// (it is unlocked, not ended), so Pdeathsig fires only when the runner dies.
func startOn(cmd *exec.Cmd, cpu int) error {
	if cpu < 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return fmt.Errorf("read thread affinity: %w", err)
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin thread to CPU %d: %w", cpu, err)
	}
	startErr := cmd.Start()
	if err := unix.SchedSetaffinity(0, &old); err != nil {
		if startErr == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		return fmt.Errorf("restore thread affinity: %w", err)
	}
	return startErr
}

// checkPinned fails unless every thread of pid may run on cpu only.
func checkPinned(pid, cpu int) error {
	if cpu < 0 {
		return nil
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list threads of %d: %w", pid, err)
	}
	for _, e := range ents {
		status, err := os.ReadFile(dir + "/" + e.Name() + "/status")
		if err != nil {
			continue // the thread ended
		}
		got, err := harness.StatusField(status, "Cpus_allowed_list")
		if err != nil {
			return fmt.Errorf("%s/%s/status: %w", dir, e.Name(), err)
		}
		if got != strconv.Itoa(cpu) {
			return fmt.Errorf("thread %s of process %d may run on CPUs %s; want %d", e.Name(), pid, got, cpu)
		}
	}
	return nil
}
