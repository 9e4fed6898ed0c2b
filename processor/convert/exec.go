package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// childPath is the PATH converter processes see. Tools are started by
// absolute path; this only matters for helpers they exec themselves.
const childPath = "/usr/local/bin:/usr/bin:/bin"

// proc describes one converter process.
type proc struct {
	argv []string
	// workDir is the process's cwd, TMPDIR and HOME.
	workDir string
	// extraEnv is added to the minimal environment.
	extraEnv []string
	// limits bound the process; zero means the Config's.
	limits Limits
	// cpu, when set, has the process's CPU time added to it.
	cpu *time.Duration
}

// procError is a converter process that did not exit 0.
type procError struct {
	tool   string
	err    error // from Wait
	stderr string
}

func (e *procError) Error() string {
	if e.stderr == "" {
		return e.tool + ": " + e.err.Error()
	}
	return e.tool + ": " + e.err.Error() + ": " + e.stderr
}

func (e *procError) Unwrap() error { return e.err }

// resourceFailure reports whether the process failed for reasons that are
// not the input's: killed by a signal (a crash, or the kernel enforcing a
// limit), unable to start (exit 127: the dynamic loader could not map its
// libraries, typically under too small a memory limit), or out of memory.
func (e *procError) resourceFailure() bool {
	if e.signaled() {
		return true
	}
	var ee *exec.ExitError
	if errors.As(e.err, &ee) && ee.ExitCode() == 127 {
		return true
	}
	s := strings.ToLower(e.stderr)
	for _, m := range []string{"out of memory", "cannot allocate memory", "memory allocation failed", "error while loading shared libraries"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// signaled reports whether the process died from a signal (a crash, or the
// kernel enforcing the memory limit) rather than exiting with an error.
func (e *procError) signaled() bool {
	var ee *exec.ExitError
	if !errors.As(e.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// cpuExceeded reports whether the kernel stopped the process at its CPU
// time limit (RLIMIT_CPU's soft limit sends SIGXCPU).
func (e *procError) cpuExceeded() bool {
	var ee *exec.ExitError
	if !errors.As(e.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGXCPU
}

// run starts p and waits for it. The process runs in its own process group
// with a minimal environment (nothing of Herald's, so no credentials leak
// into a decoder), stdin from /dev/null, under the address-space, CPU-time
// and file-size limits that are on, at the configured niceness. When ctx
// ends, the whole group is killed, so helpers the tool forked die too. The
// returned error is a *procError, or ctx's error when ctx ended first.
func (e *Engine) run(ctx context.Context, p proc) error {
	return e.runOut(ctx, p, nil)
}

// runOut is run with the tool's stdout going to stdout (when not nil)
// instead of into the stderr tail.
func (e *Engine) runOut(ctx context.Context, p proc, stdout io.Writer) error {
	lim := p.limits
	if lim == (Limits{}) {
		lim = e.limitsFor(OutputSpec{})
	}
	argv := p.argv
	if lim.enabled() {
		if e.prlimit == "" {
			return errors.New("convert: limits are on but prlimit was not looked up")
		}
		// prlimit sets the limits on itself and then execs the tool, so
		// the tool keeps prlimit's pid and process group.
		argv = append(append(append([]string{e.prlimit}, lim.prlimitArgs()...), "--"), argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = p.workDir
	cmd.Env = append([]string{
		"PATH=" + childPath,
		"HOME=" + p.workDir,
		"TMPDIR=" + p.workDir,
		"LC_ALL=C",
	}, p.extraEnv...)
	stderr := newTail(lim.StderrTail)
	cmd.Stdout = stderr
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		return killGroup(cmd)
	}
	// Wait returns this long after the kill even if some descendant kept
	// the stderr pipe open.
	cmd.WaitDelay = 2 * time.Second

	err := cmd.Start()
	if err == nil {
		if lim.Nice > 0 {
			// Set right after exec, before the tool starts its worker
			// threads (they inherit it). Best effort: a failure only
			// leaves the default priority.
			_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, lim.Nice)
		}
		err = cmd.Wait()
		if p.cpu != nil && cmd.ProcessState != nil {
			// Includes the children it waited for.
			*p.cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
	}
	// A tool that exited may still have left children in its group.
	_ = killGroup(cmd)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		tail := strings.ReplaceAll(stderr.String(), p.workDir+"/", "")
		return &procError{tool: toolName(p.argv[0]), err: err, stderr: tail}
	}
	return nil
}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func toolName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// tail keeps the last n bytes written to it, so a chatty or hostile tool
// cannot make Herald buffer without bound.
type tail struct {
	n       int
	buf     []byte
	dropped bool
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.n {
		// Copy the kept bytes down so the buffer stays at most 2n.
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.n:]...)
		t.dropped = true
	}
	return len(p), nil
}

// String returns the kept output: at most n bytes, starting on a UTF-8
// boundary, with "…" in front when something was dropped, newlines folded
// so the result reads as one message.
func (t *tail) String() string {
	b := t.buf
	cut := t.dropped
	if len(b) > t.n {
		b, cut = b[len(b)-t.n:], true
	}
	for len(b) > 0 && !utf8.RuneStart(b[0]) {
		b, cut = b[1:], true
	}
	s := strings.TrimSpace(string(b))
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	s = strings.Join(lines, " | ")
	if cut {
		s = "…" + s
	}
	return s
}

// toolError classifies a failed converter run. Resource failures (signals,
// limits) are the converter's; otherwise a stderr line naming one of
// corruptMarkers blames the input (corrupt_input), since the tools report
// decode problems only as text; anything else is converter_failed.
func toolError(op, step string, err error, corruptMarkers ...string) error {
	var pe *procError
	if !errors.As(err, &pe) {
		return err
	}
	detail := fmt.Errorf("%s: %w", step, err)
	if pe.cpuExceeded() {
		// Out of CPU budget: the input costs more than the converter may
		// spend on it (a vector file rendered at great cost, say).
		return fail(CodeTimeout, op, fmt.Errorf("CPU time limit reached: %w", detail))
	}
	if pe.resourceFailure() {
		return fail(CodeConverterFailed, op, detail)
	}
	s := strings.ToLower(pe.stderr)
	for _, m := range corruptMarkers {
		if strings.Contains(s, m) {
			return fail(CodeCorruptInput, op, detail)
		}
	}
	return fail(CodeConverterFailed, op, detail)
}
