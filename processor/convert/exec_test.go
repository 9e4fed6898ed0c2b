package convert

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

// TestRunKillsProcessGroup: on timeout the whole process group dies, not
// just the direct child. The shell here is the test's stand-in for a
// converter that forks helpers; production never starts a shell.
func TestRunKillsProcessGroup(t *testing.T) {
	e := newEngine(t, nil)
	wd := t.TempDir()
	pidFile := filepath.Join(wd, "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := e.run(ctx, proc{
		argv:    []string{"/bin/sh", "-c", "sleep 60 & echo $! > " + pidFile + "; wait"},
		workDir: wd,
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run() error = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("run() returned after %s: the kill did not reach the group", d)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	// The grandchild is gone, or a zombie waiting for init to reap it.
	testkit.WaitFor(t, 5*time.Second, fmt.Sprintf("grandchild %d gone", pid), func() bool {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return err != nil || strings.Contains(string(stat), ") Z ")
	})
}

func TestRunEnvironmentIsMinimal(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
	e := newEngine(t, func(c *Config) { c.MemoryLimit = -1 })
	wd := t.TempDir()
	out := newTail(4096)
	if err := e.runOut(context.Background(), proc{argv: []string{"/usr/bin/env"}, workDir: wd}, out); err != nil {
		t.Fatal(err)
	}
	env := out.String()
	if strings.Contains(env, "do-not-leak") {
		t.Errorf("converter environment contains Herald's secrets: %s", env)
	}
	if !strings.Contains(env, "TMPDIR="+wd) {
		t.Errorf("TMPDIR is not the work dir: %s", env)
	}
}

func TestRunAppliesAddressSpaceLimit(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MemoryLimit = 3 << 30 })
	out := newTail(4096)
	if err := e.runOut(context.Background(), proc{argv: []string{"/bin/sh", "-c", "ulimit -v"}, workDir: t.TempDir()}, out); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(out.String()), strconv.Itoa(3<<30/1024); got != want {
		t.Errorf("ulimit -v = %q KiB, want %s", got, want)
	}
}

func TestRunLowersPriority(t *testing.T) {
	tests := []struct {
		nice int
		want string
	}{
		{0, "10"}, {5, "5"}, {-1, "0"},
	}
	if b, err := exec.Command("nice").Output(); err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Skipf("tests run at niceness %q (%v), not 0", b, err)
	}
	for _, tt := range tests {
		e := newEngine(t, func(c *Config) { c.Nice = tt.nice })
		out := newTail(4096)
		// The pause lets the priority be set before the child reads it;
		// the tools themselves start their threads later than that too.
		if err := e.runOut(context.Background(), proc{argv: []string{"/bin/sh", "-c", "sleep 0.2; nice"}, workDir: t.TempDir()}, out); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(out.String()); got != tt.want {
			t.Errorf("Nice %d: child niceness %q, want %s", tt.nice, got, tt.want)
		}
	}
}

func TestRunStderrTailIsBounded(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.StderrTail = 64 })
	wd := t.TempDir()
	err := e.run(context.Background(), proc{
		// 1 MiB of noise, then the line that matters, then failure.
		argv:    []string{"/bin/sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x >&2; echo >&2; echo the real error >&2; exit 3"},
		workDir: wd,
	})
	var pe *procError
	if !errors.As(err, &pe) {
		t.Fatalf("run() error = %v, want *procError", err)
	}
	if len(pe.stderr) > 64+len("…")+4 || !strings.HasSuffix(pe.stderr, "the real error") {
		t.Errorf("stderr tail = %q (%d bytes)", pe.stderr, len(pe.stderr))
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		writes []string
		want   string
	}{
		{"short", 10, []string{"ab\n", "cd\n"}, "ab | cd"},
		{"cut", 4, []string{"hello", " world"}, "…orld"},
		{"utf8 boundary", 3, []string{"aé€"}, "…€"},
		{"many writes", 5, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "1", "2"}, "…89012"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := newTail(tt.n)
			for _, w := range tt.writes {
				tl.Write([]byte(w))
				if len(tl.buf) > 2*tt.n+len(w) {
					t.Fatalf("buffer grew to %d", len(tl.buf))
				}
			}
			if got := tl.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

// The FIFO and TCP watchers back the "nothing outside the input was read"
// assertions; make sure they do see a reader and a connection.
func TestWatchersDetect(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	opened := watchFIFO(t, p)
	fd, err := syscall.Open(p, syscall.O_RDONLY, 0) // blocks until the watcher opens
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	// The watcher records the hit after its open returns, which can be
	// just after ours does.
	for i := 0; i < 100 && !opened(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !opened() {
		t.Error("watchFIFO missed a reader")
	}
	addr, connected := watchTCP(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	for i := 0; i < 100 && !connected(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !connected() {
		t.Error("watchTCP missed a connection")
	}
}
