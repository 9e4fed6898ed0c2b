package loadtest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// WorkerProc is a started worker: its stdin takes the config and commands,
// its stdout yields messages, Wait returns when it has ended.
type WorkerProc struct {
	Stdin  io.WriteCloser
	Stdout io.Reader
	Wait   func() error
	PID    int // the worker's process; 0 when it runs in this one
}

// Spawner starts workers.
type Spawner interface {
	Start(ctx context.Context, index int) (WorkerProc, error)
}

// InProcess runs workers as goroutines of this process: for tests and for
// runs small enough to fit one process's file limit.
type InProcess struct{}

var _ Spawner = InProcess{}

// Start runs RunWorker on a goroutine connected by pipes.
func (InProcess) Start(ctx context.Context, _ int) (WorkerProc, error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := RunWorker(ctx, inR, outW)
		_ = inR.Close()
		_ = outW.Close()
		done <- err
	}()
	return WorkerProc{Stdin: inW, Stdout: outR, Wait: func() error { return <-done }}, nil
}

// Exec runs each worker as a child process (each with its own file limit):
// Path with Args, e.g. the herald binary with "loadtest", "--worker".
type Exec struct {
	Path string
	Args []string
	// Stderr receives the children's stderr; nil discards it.
	Stderr io.Writer
}

var _ Spawner = Exec{}

// Start starts one child.
func (e Exec) Start(ctx context.Context, index int) (WorkerProc, error) {
	cmd := exec.CommandContext(ctx, e.Path, e.Args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("HERALD_LOADTEST_WORKER=%d", index))
	cmd.Stderr = e.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return WorkerProc{}, fmt.Errorf("worker %d stdin: %w", index, err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return WorkerProc{}, fmt.Errorf("worker %d stdout: %w", index, err)
	}
	if err := cmd.Start(); err != nil {
		return WorkerProc{}, fmt.Errorf("start worker %d (%s): %w", index, e.Path, err)
	}
	return WorkerProc{Stdin: in, Stdout: out, Wait: cmd.Wait, PID: cmd.Process.Pid}, nil
}
