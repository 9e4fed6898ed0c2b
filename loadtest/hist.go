package loadtest

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to 2 minutes with three
// significant figures.
const (
	histMin = 1
	histMax = int64(2 * time.Minute / time.Microsecond)
	histSig = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSig) }

// Hist is a histogram in a compact, mergeable JSON form: the non-zero
// bucket counts of an hdrhistogram with the fixed bounds above.
type Hist struct {
	Idx []int32 `json:"i,omitempty"`
	Cnt []int64 `json:"c,omitempty"`
}

func exportHist(h *hdrhistogram.Histogram) Hist {
	var out Hist
	for i, c := range h.Export().Counts {
		if c != 0 {
			out.Idx = append(out.Idx, int32(i))
			out.Cnt = append(out.Cnt, c)
		}
	}
	return out
}

// mergeInto adds s into h.
func (s Hist) mergeInto(h *hdrhistogram.Histogram) {
	if len(s.Idx) == 0 {
		return
	}
	snap := h.Export()
	counts := make([]int64, len(snap.Counts))
	for k, i := range s.Idx {
		if int(i) < len(counts) {
			counts[i] = s.Cnt[k]
		}
	}
	h.Merge(hdrhistogram.Import(&hdrhistogram.Snapshot{
		LowestTrackableValue: histMin, HighestTrackableValue: histMax,
		SignificantFigures: histSig, Counts: counts,
	}))
}

// Percentiles are latency percentiles in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50Ms"`
	P90   float64 `json:"p90Ms"`
	P99   float64 `json:"p99Ms"`
	P999  float64 `json:"p999Ms"`
	Max   float64 `json:"maxMs"`
}

func percentiles(h *hdrhistogram.Histogram) Percentiles {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)),
		Max: ms(h.Max()),
	}
}

// recorder collects delivery latencies from every session goroutine of a
// worker: the whole phase, and one window per second for the time plot.
type recorder struct {
	mu     sync.Mutex
	phase  *hdrhistogram.Histogram
	window *hdrhistogram.Histogram
}

func newRecorder() *recorder { return &recorder{phase: newHist(), window: newHist()} }

func (r *recorder) record(d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < histMin {
		us = histMin
	}
	if us > histMax {
		us = histMax
	}
	r.mu.Lock()
	_ = r.phase.RecordValue(us)
	_ = r.window.RecordValue(us)
	r.mu.Unlock()
}

// takeWindow returns the window so far and starts a new one.
func (r *recorder) takeWindow() Hist {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := exportHist(r.window)
	r.window.Reset()
	return out
}

// takePhase returns the phase so far and starts a new one.
func (r *recorder) takePhase() Hist {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := exportHist(r.phase)
	r.phase.Reset()
	r.window.Reset()
	return out
}
