package convert

import (
	"fmt"
	"strconv"
	"time"
)

// Limits is the sandbox one conversion runs in. The same limits bind the
// built-in converters and command outputs. They can be set in [Config]
// (for every output), on a [Pipeline] and on an [OutputSpec]; a zero
// field inherits from the next level out (output, then pipeline, then
// Config), and a negative one turns that limit off.
type Limits struct {
	// MemoryLimit caps each converter process's address space (RLIMIT_AS),
	// in bytes. Config default 2 GiB.
	MemoryLimit int64 `yaml:"memoryLimit"`
	// CPUTimeLimit caps each converter process's CPU time (RLIMIT_CPU,
	// whole seconds, rounded up; all of its threads count). Config
	// default: the conversion's Timeout, so a tool that keeps every core
	// busy is stopped sooner than one that waits.
	CPUTimeLimit time.Duration `yaml:"cpuTimeLimit"`
	// FileSizeLimit caps the size of any file a converter process writes
	// (RLIMIT_FSIZE), in bytes. Config default 1 GiB.
	FileSizeLimit int64 `yaml:"fileSizeLimit"`
	// Timeout bounds one conversion's wall time, all of its processes
	// included. Config defaults: ImageTimeout, AudioTimeout or
	// CommandTimeout by converter.
	Timeout time.Duration `yaml:"timeout"`
	// Nice is the scheduling niceness (1-19) converter processes run at.
	// Config default 10.
	Nice int `yaml:"nice"`
	// StderrTail is how many trailing bytes of a process's stdout and
	// stderr are kept for the error message and log; the rest is
	// discarded as it arrives. Config default 2048.
	StderrTail int `yaml:"stderrTail"`
}

// Or returns l with every zero field taken from d.
func (l Limits) Or(d Limits) Limits {
	if l.MemoryLimit == 0 {
		l.MemoryLimit = d.MemoryLimit
	}
	if l.CPUTimeLimit == 0 {
		l.CPUTimeLimit = d.CPUTimeLimit
	}
	if l.FileSizeLimit == 0 {
		l.FileSizeLimit = d.FileSizeLimit
	}
	if l.Timeout == 0 {
		l.Timeout = d.Timeout
	}
	if l.Nice == 0 {
		l.Nice = d.Nice
	}
	if l.StderrTail == 0 {
		l.StderrTail = d.StderrTail
	}
	return l
}

// Validate reports a limit out of range.
func (l Limits) Validate() error {
	switch {
	case l.Timeout < 0:
		return fmt.Errorf("timeout %s: must be positive (or 0 to inherit)", l.Timeout)
	case l.Nice > 19:
		return fmt.Errorf("nice %d: at most 19", l.Nice)
	case l.StderrTail < 0 || l.StderrTail > 1<<20:
		return fmt.Errorf("stderrTail %d: out of 0..1048576", l.StderrTail)
	case l.MemoryLimit > 0 && l.MemoryLimit < 16<<20:
		return fmt.Errorf("memoryLimit %d: below 16 MiB no tool can start", l.MemoryLimit)
	case l.CPUTimeLimit > 0 && l.CPUTimeLimit < time.Second:
		return fmt.Errorf("cpuTimeLimit %s: at least 1s", l.CPUTimeLimit)
	}
	return nil
}

// enabled reports whether any limit needs prlimit.
func (l Limits) enabled() bool {
	return l.MemoryLimit > 0 || l.CPUTimeLimit > 0 || l.FileSizeLimit > 0
}

// prlimitArgs are util-linux prlimit's options for the limits that are on.
// The CPU limit's hard value is one second above the soft one: at the
// soft limit the kernel sends SIGXCPU, at the hard one SIGKILL, so a tool
// that ignores the first still ends.
func (l Limits) prlimitArgs() []string {
	var args []string
	if l.MemoryLimit > 0 {
		args = append(args, "--as="+strconv.FormatInt(l.MemoryLimit, 10))
	}
	if l.CPUTimeLimit > 0 {
		s := int64((l.CPUTimeLimit + time.Second - 1) / time.Second)
		args = append(args, "--cpu="+strconv.FormatInt(s, 10)+":"+strconv.FormatInt(s+1, 10))
	}
	if l.FileSizeLimit > 0 {
		args = append(args, "--fsize="+strconv.FormatInt(l.FileSizeLimit, 10))
	}
	return args
}

// limitsFor returns the effective limits of spec (whose own Limits
// already carry its pipeline's): spec first, then Config.
func (e *Engine) limitsFor(spec OutputSpec) Limits {
	l := spec.Limits.Or(e.cfg.Limits())
	if l.Timeout == 0 {
		l.Timeout = e.cfg.timeoutFor(spec.Converter)
	}
	if l.CPUTimeLimit == 0 {
		l.CPUTimeLimit = l.Timeout
	}
	return l
}

// Limits returns the Config-level limits (defaults filled by New). Their
// Timeout is zero: it depends on the converter.
func (c Config) Limits() Limits {
	return Limits{MemoryLimit: c.MemoryLimit, CPUTimeLimit: c.CPUTimeLimit, FileSizeLimit: c.FileSizeLimit,
		Nice: c.Nice, StderrTail: c.StderrTail}
}

func (c Config) timeoutFor(converter string) time.Duration {
	switch converter {
	case ConverterImage:
		return c.ImageTimeout
	case ConverterAudio, ConverterWaveform:
		return c.AudioTimeout
	}
	return c.CommandTimeout
}
