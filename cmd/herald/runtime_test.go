package main

import (
	"context"
	"io"
	"log/slog"
	"runtime"
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

// After a wave of long-lived allocations (sessions arriving, with their
// handshakes' garbage) the idle collector returns memory once the process
// is quiet — not while it is busy, and not again for a quiet trickle.
func TestIdleCollectorAfterBurst(t *testing.T) {
	var calls atomic.Int32
	c := newIdleCollector(slog.New(slog.NewTextHandler(io.Discard, nil)), -1)
	c.every, c.minSlack, c.minGap = 100*time.Millisecond, 8<<20, 0
	c.collect = func() { calls.Add(1); debug.FreeOSMemory() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var kept, garbage [][]byte
	busyUntil := time.Now().Add(600 * time.Millisecond)
	next := time.Now()
	for now := time.Now(); now.Before(busyUntil); now = time.Now() { // busy: a core spinning
		if now.Before(next) || len(kept) >= 768 { // 48 MiB kept
			continue
		}
		next = now.Add(500 * time.Microsecond)
		kept = append(kept, make([]byte, 64<<10))
		for range 3 {
			garbage = append(garbage, make([]byte, 64<<10))
		}
		if len(garbage) > 64 {
			garbage = garbage[:0]
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("collected %d times while busy", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if calls.Load() != 1 {
		t.Fatalf("%d collections once the process went quiet, want 1", calls.Load())
	}
	for range 50 { // a quiet trickle (no gap required between collections here)
		garbage = append(garbage[:0], make([]byte, 256<<10))
		time.Sleep(10 * time.Millisecond)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d collections, want 1: the trickle moved nothing", n)
	}
	runtime.KeepAlive(kept)
}

// One look of TestIdleCollectorStep: seconds since the start, whether the
// process was busy, the heap in MiB, and what the collector should do.
type look struct {
	at                  int
	busy                bool
	live, objects, free uint64 // MiB
	cycles, g           uint64 // cycles completed, goroutines
	collect             bool
	percent             int
	after               *heapReading // the reading after the collection (MiB), if it collected
}

// The collector returns memory once per quiet spell after work, never for
// the idle trickle, and keeps the collector's target low while quiet or
// while the live heap grows.
func TestIdleCollectorStep(t *testing.T) {
	const M = 1 << 20
	tests := []struct {
		name  string
		gogc  int
		looks []look
	}{
		{"a wave of sessions, then quiet: one collection; the idle trickle gets none", 200, []look{
			{at: 1, busy: true, g: 2000, live: 10, objects: 30, cycles: 1, percent: 50}, // sessions arriving
			{at: 2, busy: true, g: 8000, live: 40, objects: 90, cycles: 3},
			{at: 3, busy: true, g: 30000, live: 90, objects: 200, cycles: 6},
			{at: 4, g: 30100, live: 93, objects: 260, cycles: 7, collect: true, after: &heapReading{live: 93, objects: 93, cycles: 8}},
			{at: 5, g: 30100, live: 93, objects: 97, cycles: 8},
			{at: 70, g: 30100, live: 93, objects: 140, cycles: 8}, // a minute of trickle
			{at: 200, g: 30100, live: 93, objects: 139, free: 40, cycles: 12},
		}},
		{"a stall within a wave: the end of the wave collects again", 200, []look{
			{at: 1, busy: true, g: 10000, live: 30, objects: 80, cycles: 1, percent: 50},
			{at: 2, g: 10000, live: 30, objects: 90, cycles: 1, collect: true, after: &heapReading{live: 30, objects: 30, cycles: 2}},
			{at: 3, busy: true, g: 20000, live: 60, objects: 150, cycles: 3},
			{at: 4, busy: true, g: 30000, live: 90, objects: 200, cycles: 4},
			{at: 5, g: 30000, live: 90, objects: 205, cycles: 4, collect: true}, // within minGap, but live tripled
		}},
		{"free pages left by a cycle count as reclaimable", 200, []look{
			{at: 1, busy: true, g: 100, live: 90, objects: 95, cycles: 1, percent: 50},
			{at: 12, busy: true, g: 100, live: 92, objects: 95, cycles: 2, percent: 200}, // steady for 10 s: busy target
			{at: 13, g: 100, live: 92, objects: 93, free: 120, cycles: 2, collect: true, percent: 50},
		}},
		{"little to reclaim: no collection until there is", 200, []look{
			{at: 1, busy: true, g: 100, live: 90, objects: 92, cycles: 1, percent: 50},
			{at: 12, busy: true, g: 100, live: 90, objects: 93, cycles: 2, percent: 200},
			{at: 13, g: 100, live: 90, objects: 94, free: 1, cycles: 2, percent: 50}, // 5 MiB < 90/16
			{at: 14, g: 100, live: 90, objects: 94, free: 1, cycles: 2},
			{at: 30, g: 100, live: 90, objects: 100, cycles: 2, collect: true, after: &heapReading{live: 90, objects: 90, cycles: 3}},
			{at: 200, g: 100, live: 90, objects: 150, cycles: 3},
		}},
		{"small heap: at least minSlack", 200, []look{
			{at: 1, busy: true, g: 100, live: 8, objects: 9, cycles: 1, percent: 50},
			{at: 2, g: 100, live: 8, objects: 11, cycles: 1}, // 3 MiB < 4 MiB
			{at: 3, g: 100, live: 8, objects: 13, cycles: 1, collect: true},
		}},
		{"a second wave within minGap waits for the gap", 200, []look{
			{at: 1, busy: true, g: 30000, live: 90, objects: 200, cycles: 1, percent: 50},
			{at: 2, g: 30000, live: 90, objects: 200, cycles: 1, collect: true, after: &heapReading{live: 90, objects: 90, cycles: 2}},
			{at: 5, busy: true, g: 36000, live: 110, objects: 150, cycles: 3},
			{at: 6, g: 36000, live: 110, objects: 190, cycles: 3}, // grew by less than a quarter
			{at: 30, g: 36000, live: 110, objects: 195, cycles: 3},
			{at: 62, g: 36000, live: 110, objects: 200, cycles: 3, collect: true, after: &heapReading{live: 110, objects: 110, cycles: 4}},
			{at: 200, g: 36000, live: 110, objects: 300, cycles: 4},
		}},
		{"busy with steady sessions: the busy target; a wave: low; sessions leaving: a collection", 200, []look{
			{at: 1, busy: true, g: 30000, live: 90, objects: 100, cycles: 1, percent: 50},
			{at: 12, busy: true, g: 30000, live: 91, objects: 150, cycles: 2, percent: 200},
			{at: 13, busy: true, g: 30000, live: 91, objects: 200, cycles: 2},
			{at: 14, busy: true, g: 36000, live: 110, objects: 200, cycles: 3, percent: 50},
			{at: 25, busy: true, g: 36000, live: 112, objects: 200, cycles: 5, percent: 200},
			{at: 26, g: 36000, live: 112, objects: 115, cycles: 5, percent: 50}, // 3 MiB: not worth it
			{at: 28, busy: true, g: 20000, live: 60, objects: 120, cycles: 6, percent: 200},
			{at: 29, g: 20000, live: 60, objects: 120, cycles: 6, collect: true, percent: 50},
		}},
		{"messages in flight grow the live heap: the busy target stays; a collection once they drain", 200, []look{
			{at: 1, busy: true, g: 30000, live: 90, objects: 100, cycles: 1, percent: 50},
			{at: 12, busy: true, g: 30000, live: 90, objects: 150, cycles: 2, percent: 200},
			{at: 13, busy: true, g: 30010, live: 120, objects: 200, cycles: 3},
			{at: 14, busy: true, g: 30020, live: 150, objects: 250, cycles: 4},
			{at: 15, g: 30000, live: 95, objects: 180, cycles: 5, collect: true, percent: 50},
		}},
		{"work without a change in the live heap: no collection", 200, []look{
			{at: 1, busy: true, g: 100, live: 90, objects: 200, cycles: 1, percent: 50},
			{at: 2, g: 100, live: 90, objects: 200, cycles: 1, collect: true, after: &heapReading{live: 90, objects: 90, cycles: 2}},
			{at: 20, busy: true, g: 100, live: 90, objects: 200, cycles: 2, percent: 200}, // delivering
			{at: 21, g: 100, live: 90, objects: 200, cycles: 2, percent: 50},
			{at: 22, g: 100, live: 90, objects: 200, cycles: 2},
			{at: 40, busy: true, g: 100, live: 91, objects: 180, cycles: 3, percent: 200},
			{at: 41, g: 100, live: 91, objects: 200, cycles: 3, percent: 50},
			{at: 200, g: 100, live: 91, objects: 250, cycles: 3},
		}},
		{"the collection's own cycle is not a change of the live heap", 200, []look{
			{at: 1, busy: true, g: 15000, live: 40, objects: 200, cycles: 1, percent: 50},
			{at: 2, busy: true, g: 30000, live: 80, objects: 260, cycles: 2}, // the wave's last cycle saw 80 MiB live
			{at: 3, g: 30000, live: 80, objects: 270, cycles: 2, collect: true, after: &heapReading{live: 96, objects: 96, cycles: 3}},
			{at: 4, g: 30000, live: 96, objects: 99, cycles: 3},
			{at: 80, g: 30000, live: 96, objects: 160, free: 60, cycles: 6},
		}},
		{"the operator's GOGC: target never touched", -1, []look{
			{at: 1, busy: true, g: 2000, live: 10, objects: 30, cycles: 1},
			{at: 2, g: 30000, live: 90, objects: 300, cycles: 2, collect: true},
			{at: 3, busy: true, g: 30000, live: 90, objects: 100, cycles: 3},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newIdleCollector(slog.New(slog.NewTextHandler(io.Discard, nil)), tt.gogc)
			start := time.Unix(1_000_000, 0)
			for _, l := range tt.looks {
				h := heapReading{live: l.live * M, objects: l.objects * M, free: l.free * M, cycles: l.cycles, goroutines: l.g}
				collect, percent := c.step(start.Add(time.Duration(l.at)*time.Second), l.busy, h)
				if collect != l.collect || percent != l.percent {
					t.Fatalf("at %ds: collect %v, target %d; want %v, %d", l.at, collect, percent, l.collect, l.percent)
				}
				if collect && l.after != nil {
					c.rebase(start.Add(time.Duration(l.at)*time.Second), heapReading{live: l.after.live * M, objects: l.after.objects * M, cycles: l.after.cycles})
				}
			}
		})
	}
}
