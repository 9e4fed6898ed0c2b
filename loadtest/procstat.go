package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat CPU times; 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// procSample is one reading of a process from /proc.
type procSample struct {
	RSS     int64   // bytes
	CPUSecs float64 // user + system
}

// readProc reads pid's resident set size from /proc/<pid>/status and its
// CPU time from /proc/<pid>/stat.
func readProc(pid int) (procSample, error) {
	var s procSample
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return s, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	s.RSS = statusKB(st, "VmRSS:") * 1024
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return s, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	// Fields after the command name, which is in parentheses and may
	// itself hold spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return s, fmt.Errorf("stat of pid %d: no command name", pid)
	}
	f := bytes.Fields(raw[i+1:])
	if len(f) < 13 {
		return s, fmt.Errorf("stat of pid %d: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseInt(string(f[11]), 10, 64)
	stt, _ := strconv.ParseInt(string(f[12]), 10, 64)
	s.CPUSecs = float64(ut+stt) / clockTicks
	return s, nil
}

func statusKB(st []byte, key string) int64 {
	i := bytes.Index(st, []byte(key))
	if i < 0 {
		return 0
	}
	line := st[i+len(key):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(string(f[0]), 10, 64)
	return n
}

// selfRSS is this process's resident set size in bytes.
func selfRSS() int64 {
	s, err := readProc(os.Getpid())
	if err != nil {
		return 0
	}
	return s.RSS
}

// selfCPU is this process's CPU time in seconds.
func selfCPU() float64 {
	s, err := readProc(os.Getpid())
	if err != nil {
		return 0
	}
	return s.CPUSecs
}

// readProcs sums the samples of pids; missing processes are skipped and
// reported.
func readProcs(pids []int) (procSample, error) {
	var sum procSample
	var firstErr error
	for _, p := range pids {
		s, err := readProc(p)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		sum.RSS += s.RSS
		sum.CPUSecs += s.CPUSecs
	}
	return sum, firstErr
}
