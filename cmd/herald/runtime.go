package main

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"os"
	"runtime"
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

// idleCollector gives memory back once the process goes quiet after a
// burst of allocation (a wave of connects): a gateway then holds many idle
// sessions for hours, and without this the garbage of the burst stays in
// the heap — and resident — until the heap grows again, up to GOGC per
// cent of what is live. It collects and returns free memory to the
// system when, over the last look, the process used little CPU (it is
// not delivering or accepting connections) while the heap holds clearly
// more than what the last collection found live; at most once per
// minGap.
type idleCollector struct {
	log      *slog.Logger
	every    time.Duration // how often it looks
	quietCPU float64       // share of one core below which the process is quiet
	minSlack uint64        // garbage worth collecting: bytes above the live heap
	minGap   time.Duration // between two collections
	cpu      func() (time.Duration, bool)
	collect  func() // runtime.GC + debug.FreeOSMemory
}

func newIdleCollector(log *slog.Logger) *idleCollector {
	return &idleCollector{log: log, every: time.Second, quietCPU: 0.05, minSlack: 32 << 20, minGap: time.Minute,
		cpu: processCPU, collect: debug.FreeOSMemory}
}

var idleMetrics = []string{"/gc/heap/live:bytes", "/memory/classes/heap/objects:bytes"}

// Run looks every c.every until ctx ends.
func (c *idleCollector) Run(ctx context.Context) error {
	samples := make([]metrics.Sample, len(idleMetrics))
	for i, n := range idleMetrics {
		samples[i].Name = n
	}
	heap := func() (live, objects uint64) {
		metrics.Read(samples)
		v := func(i int) uint64 {
			if samples[i].Value.Kind() != metrics.KindUint64 {
				return 0
			}
			return samples[i].Value.Uint64()
		}
		return v(0), v(1)
	}
	t := time.NewTicker(c.every)
	defer t.Stop()
	lastCPU, ok := c.cpu()
	if !ok {
		return nil
	}
	lastAt, collected := time.Now(), time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := time.Now()
		cpu, _ := c.cpu()
		busy := float64(cpu-lastCPU) / float64(now.Sub(lastAt))
		lastCPU, lastAt = cpu, now
		live, objects := heap()
		if busy >= c.quietCPU || objects <= live+max(live/4, c.minSlack) || now.Sub(collected) < c.minGap {
			continue
		}
		c.collect()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		c.log.Debug("memory returned while idle", "heap_before", objects, "heap_after", ms.HeapAlloc,
			"took", time.Since(now))
		collected = time.Now()
		lastCPU, _ = c.cpu()
		lastAt = collected
	}
}
