//go:build linux

package loadtest

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinAvailable reports whether processes can be pinned here.
const pinAvailable = true

// setAffinity restricts every thread of process pid (0: this process) to
// cpus, as `taskset -a -p` does; threads the process starts later inherit
// it. The Go runtime follows the change with GOMAXPROCS within a second.
func setAffinity(pid int, cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	if pid == 0 {
		pid = os.Getpid()
	}
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return fmt.Errorf("threads of pid %d: %w", pid, err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("pin thread %d of pid %d to CPUs %v: %w", tid, pid, cpus, err)
		}
	}
	return nil
}

// machineCPUs lists the CPUs this process may run on.
func machineCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var out []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}
