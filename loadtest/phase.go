package loadtest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/schollz/progressbar/v3"
)

// phase runs one step on every worker and merges their results.
func (r *run) phase(ctx context.Context, i int, st step, last bool, tr *TargetResult) (PhaseResult, error) {
	rate := st.rate
	a := &phaseAgg{ph: PhaseResult{Rate: rate, Publishers: st.publishers, View: st.view}, ticks: map[int]*hdrHist{}, all: newHist()}
	moved, err := r.place(st.view)
	if err != nil {
		return a.ph, err
	}
	if moved {
		if err := sleepCtx(ctx, pinSettle); err != nil {
			return a.ph, err
		}
	}
	cpu0, _ := readProcs(r.t.PIDs)
	t0 := time.Now()
	if err := r.send(command{Cmd: cmdPhase, Index: i, Rate: rate, Publishers: st.publishers, Duration: r.cfg.Duration, Drain: r.cfg.Drain}); err != nil {
		return a.ph, err
	}
	if last {
		defer r.profileCPU(ctx)()
	}
	a.bar = r.bar(int(r.cfg.Duration/time.Second), fmt.Sprintf("%s %.0f/s %d pub %s", r.t.Name, rate, st.publishers, st.view))
	if err := r.collect(ctx, a, cpu0, t0); err != nil {
		return a.ph, err
	}
	r.dropped = a.dropped
	tr.Timeline = a.timeline(tr.Timeline, i, rate)
	return a.result(time.Since(t0).Seconds()), nil
}

// profileCPU takes the servers' CPU profiles during the last rate, when
// asked to; the returned func waits for them.
func (r *run) profileCPU(ctx context.Context) (wait func()) {
	if r.cfg.ProfileDir == "" || len(r.t.PProf) == 0 {
		return func() {}
	}
	var prof sync.WaitGroup
	prof.Add(1)
	go func() {
		defer prof.Done()
		secs := max(int(r.cfg.Duration/time.Second)-1, 1)
		if err := fetchProfiles(ctx, r.cfg.ProfileDir, r.t.Name, r.t.PProf, "profile", secs); err != nil {
			r.cfg.Logger.Warn("cpu profile", "target", r.t.Name, "error", err)
		}
	}()
	return prof.Wait
}

// collect reads the workers' messages until each has reported the phase;
// the server's CPU is read when the publishing time is over.
func (r *run) collect(ctx context.Context, a *phaseAgg, cpu0 procSample, t0 time.Time) error {
	cpuTimer := time.NewTimer(r.cfg.Duration)
	defer cpuTimer.Stop()
	for a.done < len(r.procs) {
		wm, err := r.nextOrTimer(ctx, cpuTimer)
		if err != nil {
			return err
		}
		if wm == nil {
			cpu1, _ := readProcs(r.t.PIDs)
			a.cpuSecs, a.cpuWall = cpu1.CPUSecs-cpu0.CPUSecs, time.Since(t0).Seconds()
			a.ph.ServerRSS = cpu1.RSS
			continue
		}
		switch wm.m.Type {
		case msgTick, msgPhase:
			a.add(wm.m)
		case msgProgress:
			r.note(*wm)
		case msgError:
			return fmt.Errorf("worker %d: %s", wm.w, wm.m.Error)
		}
	}
	if a.bar != nil {
		_ = a.bar.Finish()
	}
	return nil
}

// phaseAgg merges the workers' messages of one phase.
type phaseAgg struct {
	ph        PhaseResult
	ticks     map[int]*hdrHist // latencies per second of the phase
	all       *hdrhistogram.Histogram
	bar       *progressbar.ProgressBar
	done      int // workers that reported the phase
	pubSecs   float64
	clientCPU float64
	dropped   int
	cpuSecs   float64 // server CPU over cpuWall seconds
	cpuWall   float64
}

type hdrHist struct {
	h *hdrhistogram.Histogram
	n int
}

func (a *phaseAgg) add(m message) {
	switch m.Type {
	case msgTick:
		h := a.ticks[m.Second]
		if h == nil {
			h = &hdrHist{newHist(), 0}
			a.ticks[m.Second] = h
		}
		m.Latency.mergeInto(h.h)
		h.n++
		if a.bar != nil && h.n == 1 {
			_ = a.bar.Add(1)
		}
	case msgPhase:
		a.done++
		m.Latency.mergeInto(a.all)
		if m.Delivery != nil {
			a.ph.Delivery.add(*m.Delivery)
		}
		a.ph.ClientRSS += m.RSS
		a.pubSecs = max(a.pubSecs, m.PubSecs)
		a.clientCPU += m.CPUSecs
		a.dropped += m.Dropped
	}
}

// result is the phase's figures after wall seconds.
func (a *phaseAgg) result(wall float64) PhaseResult {
	ph := a.ph
	if wall > 0 {
		ph.ClientCPU = a.clientCPU / wall
	}
	if a.cpuWall > 0 {
		ph.ServerCPU = a.cpuSecs / a.cpuWall
	}
	if a.pubSecs > 0 {
		ph.Achieved = float64(ph.Sent) / a.pubSecs
		ph.Delivered = float64(ph.Received) / a.pubSecs
	}
	ph.Latency = percentiles(a.all)
	return ph
}

// timeline appends the phase's seconds to the target's timeline, after
// the last second so far.
func (a *phaseAgg) timeline(tl []TimePoint, phase int, rate float64) []TimePoint {
	offset := 0.0
	if n := len(tl); n > 0 {
		offset = tl[n-1].T + 1
	}
	secs := make([]int, 0, len(a.ticks))
	for s := range a.ticks {
		secs = append(secs, s)
	}
	sort.Ints(secs)
	for _, s := range secs {
		tl = append(tl, TimePoint{T: offset + float64(s), Phase: phase, Rate: rate, Percentiles: percentiles(a.ticks[s].h)})
	}
	return tl
}
