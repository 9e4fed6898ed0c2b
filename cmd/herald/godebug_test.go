//go:build linux

package main

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `herald serve` re-executes itself with GODEBUG=adaptivestackstart=0
// unless the operator set that setting; other GODEBUG settings stay.
func TestServeSetsStackSetting(t *testing.T) {
	tests := []struct {
		name, godebug, want string
	}{
		{"unset", "", "adaptivestackstart=0"},
		{"other settings kept", "madvdontneed=1", "madvdontneed=1,adaptivestackstart=0"},
		{"operator's choice wins", "adaptivestackstart=1", "adaptivestackstart=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(heraldBin, "serve", "--roles", "broker,web")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HERALD_HTTP_ADDR=127.0.0.1:0",
				"HERALD_DATA_DIR=" + t.TempDir(), "HERALD_LOG_FORMAT=json", "HERALD_DEMO_API_KEY=" + testAPIKey}
			if tt.godebug != "" {
				cmd.Env = append(cmd.Env, "GODEBUG="+tt.godebug)
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				_ = cmd.Wait()
			}()
			ready := make(chan bool, 1)
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					if strings.Contains(sc.Text(), `"herald ready"`) {
						ready <- true
					}
				}
			}()
			select {
			case <-ready:
			case <-time.After(30 * time.Second):
				t.Fatal("herald serve did not get ready")
			}
			environ, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/environ")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, kv := range strings.Split(string(environ), "\x00") {
				if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
					got = append(got, v)
				}
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("GODEBUG of the running gateway = %q, want [%q]", got, tt.want)
			}
		})
	}
}
