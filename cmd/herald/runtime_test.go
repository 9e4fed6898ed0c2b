package main

import (
	"context"
	"io"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

// The operator's GOGC and GOMEMLIMIT win; without them serve sets its own.
func TestRuntimeDefaults(t *testing.T) {
	prevGC := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(prevGC); debug.SetMemoryLimit(prevLimit) })

	s := applyRuntimeDefaults(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != defaultGOGC || s.GOGC != defaultGOGC {
		t.Errorf("GOGC %d (reported %d), want %d", got, s.GOGC, defaultGOGC)
	}
	total := memoryAvailable()
	if total <= 0 {
		t.Skip("memory size unknown here")
	}
	want := int64(float64(total) * memoryLimitShare)
	if got := debug.SetMemoryLimit(-1); got != want || s.MemoryLimit != want {
		t.Errorf("memory limit %d (reported %d), want %d of %d", got, s.MemoryLimit, want, total)
	}

	debug.SetMemoryLimit(1 << 40)
	env := map[string]string{"GOGC": "300", "GOMEMLIMIT": "1GiB"}
	s = applyRuntimeDefaults(func(k string) string { return env[k] })
	if got := debug.SetGCPercent(100); got != 100 || s.GOGC != -1 {
		t.Errorf("GOGC changed to %d (reported %d) although the environment sets it", got, s.GOGC)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<40 || s.MemoryLimit != 0 {
		t.Errorf("memory limit changed to %d although the environment sets it", got)
	}
}

// After a burst of allocation the idle collector returns the garbage once
// the process is quiet, and not while it is busy.
func TestIdleCollectorAfterBurst(t *testing.T) {
	prev := debug.SetGCPercent(-1) // the burst's garbage stays until collected
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	var calls atomic.Int32
	c := newIdleCollector(slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.every, c.minSlack = 100*time.Millisecond, 8<<20
	c.collect = func() { calls.Add(1); debug.FreeOSMemory() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var sink [][]byte
	busyUntil := time.Now().Add(500 * time.Millisecond)
	next := time.Now()
	for now := time.Now(); now.Before(busyUntil); now = time.Now() { // busy: a core spinning
		if now.Before(next) {
			continue
		}
		next = now.Add(time.Millisecond) // ≈ 32 MiB of garbage in all
		sink = append(sink, make([]byte, 64<<10))
		if len(sink) > 64 {
			sink = sink[:0]
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("collected %d times while allocating", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if calls.Load() == 0 {
		t.Fatal("no collection once the process went quiet")
	}
}
