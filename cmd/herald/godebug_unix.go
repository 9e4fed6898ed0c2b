//go:build unix

package main

import (
	"os"
	"strings"
	"syscall"
)

// stackSetting makes new goroutines start at the smallest stack instead of
// the average size of the stacks the last GC scanned. On a gateway that
// average is pulled up by mochi's per-client read loops (16 KiB each), so
// every client's write loop would start — and, being too deep to halve,
// stay — at 8 KiB instead of 4 KiB: 4 KiB more per idle browser
// (docs/benchmarks-broker.md).
const stackSetting = "adaptivestackstart=0"

// reexecForStacks re-executes `herald serve` and `herald loadtest` once with
// stackSetting added to GODEBUG, unless GODEBUG already names the setting
// (the operator's choice wins). The runtime reads it only at start and a
// //go:debug line cannot set it, hence the exec: same process id, same
// arguments. It returns only when no exec was needed or the exec failed, in
// which case the program simply runs with the runtime default.
func reexecForStacks() {
	if len(os.Args) < 2 || (os.Args[1] != "serve" && os.Args[1] != "loadtest") {
		return
	}
	cur := os.Getenv("GODEBUG")
	if strings.Contains(cur, "adaptivestackstart=") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	val := stackSetting
	if cur != "" {
		val = cur + "," + stackSetting
	}
	env := []string{"GODEBUG=" + val}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	_ = syscall.Exec(exe, os.Args, env)
}
