package loadtest

import (
	"os"
	"runtime"
	"strings"
	"syscall"
)

func hostInfo() Host {
	h := Host{CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		h.MemGiB = float64(statusKB(b, "MemTotal:")) / (1 << 20)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			h.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		h.FDLimit = rl.Cur
	}
	return h
}
