package main

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// Go runtime settings of `herald serve`, unless the operator sets GOGC or
// GOMEMLIMIT (docs/tuning.md).
//
// A gateway's heap is mostly long-lived sessions; what it allocates per
// delivery is little (the broker's publish path allocates nothing per
// delivery of its own). So collections can be rare — GOGC 200 instead of
// 100 — while a memory limit of three quarters of what the machine (or the
// container's cgroup) allows makes the collector work harder, instead of
// the process being killed, when memory runs short.
const (
	defaultGOGC      = 200
	memoryLimitShare = 0.75
)

// runtimeSettings are what applyRuntimeDefaults chose (for the log line).
type runtimeSettings struct {
	GOGC        int   // -1: the operator's GOGC
	MemoryLimit int64 // bytes; 0: the operator's GOMEMLIMIT or no limit known
}

// applyRuntimeDefaults sets the collector's target and memory limit unless
// the environment does. It runs first thing in serve, before the heap grows.
func applyRuntimeDefaults(getenv func(string) string) runtimeSettings {
	s := runtimeSettings{GOGC: -1}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
		s.GOGC = defaultGOGC
	}
	if getenv("GOMEMLIMIT") == "" {
		if total := memoryAvailable(); total > 0 {
			s.MemoryLimit = int64(float64(total) * memoryLimitShare)
			debug.SetMemoryLimit(s.MemoryLimit)
		}
	}
	return s
}

// memoryAvailable is the memory this process may use: the cgroup's limit
// (v2, or v1) when there is one, else the machine's; 0 when unknown.
func memoryAvailable() int64 {
	total := meminfoTotal()
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && v > 0 && (total == 0 || v < total) {
			total = v // "max" (no limit) does not parse; v1 reports a huge number
		}
	}
	return total
}

func meminfoTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("MemTotal:")); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// idleCollector keeps the gateway's memory close to what it holds live.
// Three things fill it otherwise:
//
//   - the garbage of a burst (a wave of connects) stays in the heap — and
//     resident — until the heap grows again, up to GOGC per cent above what
//     is live;
//   - the survivors of a burst are spread thinly: between two cycles the
//     runtime lays new objects out in fresh spans, the few that live (a
//     session's state) beside the many that die (its handshake), and a span
//     with one live object cannot be returned. At GOGC 200 a wave of
//     15,000 connects leaves 65-95 MiB of such holes, two thirds to all of
//     the sessions' heap (docs/benchmarks.md);
//   - a steady trickle while idle: mochi's per-second sweep copies its
//     client map and every client's inflight list (≈ 250 bytes per session
//     per second), so at GOGC 200 an idle gateway's heap climbs by twice
//     what is live between two cycles.
//
// So it looks every second at the process's CPU time and at the heap:
//
//   - the collector's target is busyGOGC only while the process is busy
//     with a steady number of sessions (delivering); while it is quiet, or
//     while its goroutines — two per mochi client — grow by more than a
//     sixteenth within ten seconds (a wave of sessions arriving), it is
//     lowGOGC, so survivors are laid out densely and the idle trickle is
//     collected by ordinary concurrent cycles before the heap grows by
//     more than half of what a cycle scans (live heap and stacks). The live
//     heap is no sign of sessions arriving: it also grows with messages in
//     flight, when more cycles would only slow delivery;
//   - once the process goes quiet after the live heap moved (sessions came
//     or went) it collects and returns free memory to the system
//     (debug.FreeOSMemory) as soon as garbage and free pages together
//     exceed a sixteenth of what is live (at least minSlack): once per such
//     change, and not twice within minGap unless what is live grew by a
//     quarter since. The idle trickle does not move the live heap, so an
//     idle gateway is not collected again and again.
//
// With the operator's GOGC (lowGOGC 0) it never changes the target.
type idleCollector struct {
	log      *slog.Logger
	every    time.Duration // how often it looks
	quietCPU float64       // share of one core below which the process is quiet
	minSlack uint64        // smallest reclaimable heap worth a collection, bytes
	minGap   time.Duration // between two collections
	lowGOGC  int           // target while quiet or growing; 0: leave GOGC alone
	busyGOGC int           // target while busy with a steady number of sessions
	cpu      func() (time.Duration, bool)
	collect  func()    // runtime.GC + debug.FreeOSMemory
	setGC    func(int) // debug.SetGCPercent

	// What step remembers between looks.
	moved         bool      // the live heap moved since the last collection
	collected     time.Time // last collection
	baseLive      uint64    // live heap the next change is measured from ...
	baseAt        time.Time // ... taken then
	lastCycles    uint64    // cycles completed at the last look
	baseG         uint64    // goroutines the next change is measured from ...
	baseGAt       time.Time // ... counted then
	growing       bool      // goroutines grew within growthWindow: sessions arriving
	liveAtCollect uint64    // live heap after the last collection
	percent       int       // target set last; 0 before the first
}

const (
	lowGCPercent       = 50
	idleSlackShare     = 16               // reclaimable heap worth a collection: live/16 ...
	idleMinSlack       = 4 << 20          // ... and at least this
	growthShare        = 16               // live heap change that counts: live/16 ...
	minGrowth          = 4 << 20          // ... and at least this ...
	growthWindow       = 10 * time.Second // ... within this: a slow wave counts too
	minGoroutineGrowth = 64               // sessions arriving: goroutines grew by a sixteenth and at least this
)

// newIdleCollector watches the process every second. gogc is the collector
// target serve set (-1: the operator's GOGC, which it leaves alone).
func newIdleCollector(log *slog.Logger, gogc int) *idleCollector {
	c := &idleCollector{log: log, every: time.Second, quietCPU: 0.05, minSlack: idleMinSlack, minGap: time.Minute,
		cpu: processCPU, collect: debug.FreeOSMemory, setGC: func(p int) { debug.SetGCPercent(p) }}
	if gogc > lowGCPercent {
		c.lowGOGC, c.busyGOGC = lowGCPercent, gogc
	}
	return c
}

// idleMetrics: what the last cycle found live, the heap's objects (live and
// not yet swept garbage), its free pages not yet returned to the system,
// the number of completed cycles and of goroutines.
var idleMetrics = []string{"/gc/heap/live:bytes", "/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes", "/gc/cycles/total:gc-cycles", "/sched/goroutines:goroutines"}

// heapReading is one reading of idleMetrics.
type heapReading struct{ live, objects, free, cycles, goroutines uint64 }

// reclaimable is what a collection can give back: garbage plus free pages.
func (h heapReading) reclaimable() uint64 {
	return h.objects - min(h.live, h.objects) + h.free
}

// step takes one look: busy says whether the process used at least
// quietCPU of a core since the last (an ordinary cycle's workers may make
// an idle look busy; that only delays a collection). It reports whether
// to collect now and the collector target to set (0: leave it).
func (c *idleCollector) step(now time.Time, busy bool, h heapReading) (collect bool, percent int) {
	// Sessions arriving: every mochi client adds two goroutines. (The live
	// heap also grows with messages in flight, which is no reason for more
	// cycles.)
	gStep := max(c.baseG/growthShare, minGoroutineGrowth)
	switch {
	case h.goroutines > c.baseG+gStep:
		c.growing, c.baseG, c.baseGAt = true, h.goroutines, now
	case h.goroutines+gStep < c.baseG || now.Sub(c.baseGAt) >= growthWindow:
		c.growing, c.baseG, c.baseGAt = false, h.goroutines, now
	}
	if h.cycles != c.lastCycles {
		c.lastCycles = h.cycles
		step := max(c.baseLive/growthShare, minGrowth)
		switch {
		case h.live > c.baseLive+step || h.live+step < c.baseLive:
			c.moved, c.baseLive, c.baseAt = true, h.live, now
		case now.Sub(c.baseAt) >= growthWindow:
			c.baseLive, c.baseAt = h.live, now
		}
	}
	// A quiet look within a wave (the clients stalled) may collect too
	// early; then the end of the wave may collect again within minGap if
	// what is live grew by a quarter since: geometric, so a few at most.
	gapOK := now.Sub(c.collected) >= c.minGap || h.live >= c.liveAtCollect+c.liveAtCollect/4
	if !busy && c.moved && gapOK && h.reclaimable() > max(h.live/idleSlackShare, c.minSlack) {
		collect, c.collected, c.moved, c.liveAtCollect = true, now, false, h.live
	}
	want := c.busyGOGC
	if !busy || c.growing {
		want = c.lowGOGC
	}
	if c.lowGOGC > 0 && want != c.percent {
		c.percent, percent = want, want
	}
	return collect, percent
}

// rebase takes the reading after a collection at now as the live heap's
// new starting point: the collection's own cycle is not a change.
func (c *idleCollector) rebase(now time.Time, h heapReading) {
	c.baseLive, c.baseAt, c.lastCycles, c.moved = h.live, now, h.cycles, false
	c.liveAtCollect = h.live
}

// Run looks every c.every until ctx ends, then restores busyGOGC.
func (c *idleCollector) Run(ctx context.Context) error {
	samples := make([]metrics.Sample, len(idleMetrics))
	for i, n := range idleMetrics {
		samples[i].Name = n
	}
	read := func() heapReading {
		metrics.Read(samples)
		v := func(i int) uint64 {
			if samples[i].Value.Kind() != metrics.KindUint64 {
				return 0
			}
			return samples[i].Value.Uint64()
		}
		return heapReading{live: v(0), objects: v(1), free: v(2), cycles: v(3), goroutines: v(4)}
	}
	t := time.NewTicker(c.every)
	defer t.Stop()
	lastCPU, ok := c.cpu()
	if !ok {
		return nil
	}
	defer func() {
		if c.percent != 0 && c.percent != c.busyGOGC {
			c.setGC(c.busyGOGC)
		}
	}()
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := time.Now()
		cpu, _ := c.cpu()
		busy := float64(cpu-lastCPU) >= c.quietCPU*float64(now.Sub(lastAt))
		lastCPU, lastAt = cpu, now
		h := read()
		collect, percent := c.step(now, busy, h)
		if percent != 0 {
			c.setGC(percent)
		}
		if !collect {
			continue
		}
		c.collect()
		after := read()
		c.rebase(time.Now(), after)
		c.log.Debug("memory returned while idle", "heap_before", h.objects, "free_before", h.free,
			"heap_after", after.objects, "took", time.Since(now))
		lastCPU, _ = c.cpu() // the collection's own CPU is not the gateway's work
		lastAt = time.Now()
	}
}
