// Package loadtest opens many browser-like MQTT-over-WebSocket sessions
// against a Herald gateway (one or several replicas) or a plain MQTT broker
// such as Mosquitto, publishes events to them at fixed rates and measures
// connect success and time, publish→deliver latency, loss, duplicates and
// order, and the server's memory and CPU. A run spreads its sessions over
// worker processes (each under its own file limit) and aggregates their
// JSON results. It only ever targets loopback addresses.
package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/schollz/progressbar/v3"
)

// Defaults for zero Config fields.
const (
	DefaultSessions     = 1000
	DefaultRamp         = 2000
	DefaultDuration     = 10 * time.Second
	DefaultDrain        = 5 * time.Second
	DefaultSettle       = 3 * time.Second
	DefaultPayloadBytes = 64
	DefaultTimeout      = 15 * time.Second
	DefaultPublishers   = 2
	// DefaultSessionsPerWorker keeps each worker under the 20,000 file
	// limit with room for publishers and HTTP connections.
	DefaultSessionsPerWorker = 15000
	// DefaultHardCap ends any run, whatever its settings.
	DefaultHardCap = 30 * time.Minute
	// MaxSessions bounds one run.
	MaxSessions = 200_000
)

// Target is one system under test.
type Target struct {
	Name     string    // "herald", "mosquitto"
	Kind     string    // KindHerald or KindMQTT
	Replicas []Replica // sessions are spread round robin
	App      string    // Herald app id
	APIKey   string    // Herald app API key (sessions over HTTP, service publisher)
	Secret   string    // Herald app secret (offline minting)
	Mint     string    // MintHTTP (default) or MintOffline
	Publish  string    // PublishMQTT (default) or PublishHTTP
	PIDs     []int     // server processes to sample; none: no server figures
	// PProf lists net/http/pprof base URLs of the server processes
	// (http://127.0.0.1:6060); with Config.ProfileDir set, a heap profile
	// is taken at idle and a CPU profile during the last rate.
	PProf []string
}

// Config is one run. Zero fields take the defaults above.
type Config struct {
	Targets    []Target
	Sessions   int
	Workers    int     // default: Sessions / DefaultSessionsPerWorker, rounded up
	Ramp       float64 // sessions per second over all workers
	Rates      []float64
	Duration   time.Duration // per rate
	Drain      time.Duration // wait for stragglers after each rate
	Settle     time.Duration // wait after the ramp before the idle reading
	QoS        byte
	Payload    int
	KeepAlive  time.Duration // 0: sessions do not ping
	Publishers int           // per worker per replica
	SourceIPs  int           // loopback source addresses per worker; default sessions/worker / 10000 + 1
	Origin     string
	Timeout    time.Duration // per connect
	HardCap    time.Duration
	ProfileDir string    // where server profiles are saved
	Spawn      Spawner   // default InProcess
	Progress   io.Writer // progress bar; nil: none
	Logger     *slog.Logger
}

// ErrConfig is returned (wrapped) for an unusable Config.
var ErrConfig = errors.New("loadtest: bad config")

func (c Config) withDefaults() (Config, error) {
	if c.Sessions <= 0 {
		c.Sessions = DefaultSessions
	}
	if c.Sessions > MaxSessions {
		return c, fmt.Errorf("%w: %d sessions is over the cap of %d", ErrConfig, c.Sessions, MaxSessions)
	}
	if c.Workers <= 0 {
		c.Workers = (c.Sessions + DefaultSessionsPerWorker - 1) / DefaultSessionsPerWorker
	}
	if c.Ramp <= 0 {
		c.Ramp = DefaultRamp
	}
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.Drain <= 0 {
		c.Drain = DefaultDrain
	}
	if c.Settle <= 0 {
		c.Settle = DefaultSettle
	}
	if c.Payload <= 0 {
		c.Payload = DefaultPayloadBytes
	}
	if c.Payload > 100 {
		c.Payload = 100 // the publisher encodes into a fixed buffer
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Publishers <= 0 {
		c.Publishers = DefaultPublishers
	}
	if c.SourceIPs <= 0 {
		c.SourceIPs = c.Sessions/c.Workers/10000 + 1
	}
	if c.HardCap <= 0 {
		c.HardCap = DefaultHardCap
	}
	if c.QoS > 1 {
		return c, fmt.Errorf("%w: QoS %d (0 or 1)", ErrConfig, c.QoS)
	}
	if c.Spawn == nil {
		c.Spawn = InProcess{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(c.Targets) == 0 {
		return c, fmt.Errorf("%w: no targets", ErrConfig)
	}
	for i := range c.Targets {
		t := &c.Targets[i]
		if len(t.Replicas) == 0 {
			return c, fmt.Errorf("%w: target %q has no replicas", ErrConfig, t.Name)
		}
		if t.Mint == "" {
			t.Mint = MintHTTP
		}
		if t.Publish == "" {
			t.Publish = PublishMQTT
		}
		if t.Kind == KindMQTT && t.Publish == PublishHTTP {
			return c, fmt.Errorf("%w: target %q is a plain broker; it has no HTTP API to publish through", ErrConfig, t.Name)
		}
		for _, r := range t.Replicas {
			for _, u := range []string{r.WS, r.Base} {
				if u == "" {
					continue
				}
				if err := CheckLoopback(u); err != nil {
					return c, err
				}
			}
		}
	}
	return c, nil
}

// Run runs every target in turn and returns their results.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.HardCap)
	defer cancel()
	res := &Results{
		Started: time.Now().UTC().Format(time.RFC3339),
		Host:    hostInfo(),
		Settings: Settings{Sessions: cfg.Sessions, Workers: cfg.Workers, Ramp: cfg.Ramp, Rates: cfg.Rates,
			DurationSecs: cfg.Duration.Seconds(), QoS: cfg.QoS, PayloadBytes: cfg.Payload},
	}
	for _, t := range cfg.Targets {
		res.Settings.Publish = t.Publish
		tr, err := runTarget(ctx, cfg, t)
		if err != nil {
			tr.Error = err.Error()
			cfg.Logger.Error("loadtest target failed", "target", t.Name, "error", err)
		}
		res.Targets = append(res.Targets, tr)
		if ctx.Err() != nil {
			return res, fmt.Errorf("loadtest stopped: %w", ctx.Err())
		}
	}
	return res, nil
}

type workerMsg struct {
	w int
	m message
}

// run is the state of one target's run.
type run struct {
	cfg    Config
	t      Target
	msgs   chan workerMsg
	procs  []WorkerProc
	shares []int // sessions per worker
	start  time.Time

	mu        sync.Mutex
	connected []int // latest per worker
	failed    []int
	rss       []int64
	memory    []MemPoint
	dropped   int // sessions whose connection ended, as of the last phase
}

func runTarget(ctx context.Context, cfg Config, t Target) (tr TargetResult, err error) {
	tr = TargetResult{Name: t.Name, Kind: t.Kind, Replicas: len(t.Replicas), Workers: cfg.Workers,
		Sessions: cfg.Sessions, ServerPIDs: t.PIDs, Reasons: map[string]int{}}
	r := &run{cfg: cfg, t: t, msgs: make(chan workerMsg, 1024), start: time.Now(),
		connected: make([]int, cfg.Workers), failed: make([]int, cfg.Workers), rss: make([]int64, cfg.Workers)}
	baseline := map[int]int64{}
	for _, p := range t.PIDs {
		if s, err := readProc(p); err == nil {
			baseline[p] = s.RSS
			tr.BaselineRSS += s.RSS
		}
	}
	cpu0, _ := readProcs(t.PIDs)

	sctx, stopSampler := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() { defer sampler.Done(); r.sample(sctx) }()
	defer func() { stopSampler(); sampler.Wait(); tr.Memory = r.memory }()

	// Workers stop before the sampler, so the memory curve shows the end.
	defer r.stopWorkers()
	if err := r.startWorkers(ctx); err != nil {
		return tr, err
	}

	// Ramp: wait for every worker's "ready".
	bar := r.bar(cfg.Sessions, t.Name+" connect")
	connHist := newHist()
	ready := 0
	for ready < cfg.Workers {
		wm, err := r.next(ctx)
		if err != nil {
			return tr, err
		}
		switch wm.m.Type {
		case "progress":
			r.note(wm)
			if bar != nil {
				_ = bar.Set(r.total())
			}
		case "ready":
			r.note(wm)
			ready++
			tr.Connected += wm.m.Connected
			tr.Failed += wm.m.Failed
			for k, v := range wm.m.Reasons {
				tr.Reasons[k] += v
			}
			tr.ClientRSS += wm.m.RSS
			tr.RampSecs = max(tr.RampSecs, wm.m.RampSecs)
			if wm.m.Connect != nil {
				wm.m.Connect.mergeInto(connHist)
			}
		case "error":
			return tr, fmt.Errorf("worker %d: %s", wm.w, wm.m.Error)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	tr.ConnectTime = percentiles(connHist)
	if tr.RampSecs > 0 {
		tr.RampRate = float64(tr.Connected) / tr.RampSecs
	}
	cpu1, _ := readProcs(t.PIDs)
	tr.RampCPUSecs = cpu1.CPUSecs - cpu0.CPUSecs

	// Idle reading after the ramp has settled.
	if err := sleepCtx(ctx, cfg.Settle); err != nil {
		return tr, err
	}
	per := tr.Connected / max(len(t.Replicas), 1)
	for _, p := range t.PIDs {
		s, err := readProc(p)
		if err != nil {
			continue
		}
		tr.IdleRSS += s.RSS
		pr := ProcessResult{PID: p, Sessions: per, BaselineRSS: baseline[p], IdleRSS: s.RSS}
		if per > 0 {
			pr.RSSPerSession = float64(s.RSS-baseline[p]) / float64(per)
		}
		tr.PerProcess = append(tr.PerProcess, pr)
	}
	if tr.Connected > 0 && len(t.PIDs) > 0 {
		tr.RSSPerSession = float64(tr.IdleRSS-tr.BaselineRSS) / float64(tr.Connected)
	}
	if err := fetchProfiles(ctx, cfg.ProfileDir, t.Name, t.PProf, "heap", 0); err != nil {
		cfg.Logger.Warn("heap profile", "target", t.Name, "error", err)
	}

	for i, rate := range cfg.Rates {
		ph, err := r.phase(ctx, i, rate, &tr)
		tr.Phases = append(tr.Phases, ph)
		if err != nil {
			return tr, err
		}
	}
	tr.SessionsDropped = r.dropped
	return tr, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *run) bar(n int, desc string) *progressbar.ProgressBar {
	if r.cfg.Progress == nil {
		return nil
	}
	return progressbar.NewOptions(n, progressbar.OptionSetWriter(r.cfg.Progress),
		progressbar.OptionSetDescription(desc), progressbar.OptionShowCount(),
		progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetWidth(30),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(r.cfg.Progress) }))
}

// startWorkers spawns the workers, hands each its config and starts a
// reader of its messages.
func (r *run) startWorkers(ctx context.Context) error {
	cfg, t := r.cfg, r.t
	runID := randomID()[:8]
	first := 0
	for w := 0; w < cfg.Workers; w++ {
		n := cfg.Sessions / cfg.Workers
		if w < cfg.Sessions%cfg.Workers {
			n++
		}
		r.shares = append(r.shares, n)
		// Disjoint source addresses per worker, so the workers' ephemeral
		// port ranges do not overlap.
		all := sourceIPs(t.Replicas[0].WS, cfg.SourceIPs*cfg.Workers)
		var src []string
		if len(all) > 0 {
			src = all[w*cfg.SourceIPs : (w+1)*cfg.SourceIPs]
		}
		wc := WorkerConfig{
			Index: w, Kind: t.Kind, Replicas: t.Replicas, App: t.App, APIKey: t.APIKey, Secret: t.Secret,
			Mint: t.Mint, Publish: t.Publish, Sessions: n, FirstSession: first,
			Ramp: cfg.Ramp * float64(n) / float64(cfg.Sessions), QoS: cfg.QoS, PayloadBytes: cfg.Payload,
			KeepAlive: cfg.KeepAlive, Publishers: cfg.Publishers, SourceIPs: src, Origin: cfg.Origin,
			Timeout: cfg.Timeout, RunID: runID,
		}
		first += n
		p, err := cfg.Spawn.Start(ctx, w)
		if err != nil {
			return err
		}
		r.procs = append(r.procs, p)
		b, _ := json.Marshal(wc)
		if _, err := p.Stdin.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("worker %d config: %w", w, err)
		}
		go r.read(w, p.Stdout)
	}
	return nil
}

func (r *run) read(w int, out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // a stray line; workers write only JSON
		}
		r.msgs <- workerMsg{w: w, m: m}
	}
	r.msgs <- workerMsg{w: w, m: message{Type: "exit"}}
}

// next returns the next worker message; a worker ending early is an error.
func (r *run) next(ctx context.Context) (workerMsg, error) {
	select {
	case <-ctx.Done():
		return workerMsg{}, ctx.Err()
	case wm := <-r.msgs:
		if wm.m.Type == "exit" {
			return wm, fmt.Errorf("worker %d ended early", wm.w)
		}
		return wm, nil
	}
}

func (r *run) send(c command) error {
	b, _ := json.Marshal(c)
	b = append(b, '\n')
	var errs []error
	for w, p := range r.procs {
		cc := c
		if c.Cmd == "phase" {
			cc.Rate = c.Rate * float64(r.shares[w]) / float64(r.cfg.Sessions)
			b, _ = json.Marshal(cc)
			b = append(b, '\n')
		}
		if _, err := p.Stdin.Write(b); err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", w, err))
		}
	}
	return errors.Join(errs...)
}

// stopWorkers asks every worker to close its sessions and waits (bounded)
// for them to exit.
func (r *run) stopWorkers() {
	_ = r.send(command{Cmd: "stop"})
	for _, p := range r.procs {
		_ = p.Stdin.Close()
	}
	exited := 0
	limit := time.After(30 * time.Second)
	for exited < len(r.procs) {
		select {
		case wm := <-r.msgs:
			if wm.m.Type == "exit" {
				exited++
			}
		case <-limit:
			exited = len(r.procs)
		}
	}
	for _, p := range r.procs {
		_ = p.Wait()
	}
}

func (r *run) note(wm workerMsg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.connected[wm.w] = wm.m.Connected
	r.failed[wm.w] = wm.m.Failed
	if wm.m.RSS > 0 {
		r.rss[wm.w] = wm.m.RSS
	}
}

func (r *run) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for w := range r.connected {
		n += r.connected[w] + r.failed[w]
	}
	return n
}

func (r *run) clientRSS() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, v := range r.rss {
		n += v
	}
	return n
}

// sample records server memory against connected sessions twice a second.
func (r *run) sample(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if len(r.t.PIDs) == 0 {
			continue
		}
		s, err := readProcs(r.t.PIDs)
		if err != nil && s.RSS == 0 {
			continue
		}
		r.mu.Lock()
		n := 0
		for _, c := range r.connected {
			n += c
		}
		r.memory = append(r.memory, MemPoint{T: time.Since(r.start).Seconds(), Sessions: n, RSS: s.RSS})
		r.mu.Unlock()
	}
}

// phase runs one publish rate on every worker and merges their results.
func (r *run) phase(ctx context.Context, i int, rate float64, tr *TargetResult) (PhaseResult, error) {
	ph := PhaseResult{Rate: rate}
	cpu0, _ := readProcs(r.t.PIDs)
	t0 := time.Now()
	if err := r.send(command{Cmd: "phase", Index: i, Rate: rate, Duration: r.cfg.Duration, Drain: r.cfg.Drain}); err != nil {
		return ph, err
	}
	if i == len(r.cfg.Rates)-1 && r.cfg.ProfileDir != "" && len(r.t.PProf) > 0 {
		var prof sync.WaitGroup
		prof.Add(1)
		go func() {
			defer prof.Done()
			secs := max(int(r.cfg.Duration/time.Second)-1, 1)
			if err := fetchProfiles(ctx, r.cfg.ProfileDir, r.t.Name, r.t.PProf, "profile", secs); err != nil {
				r.cfg.Logger.Warn("cpu profile", "target", r.t.Name, "error", err)
			}
		}()
		defer prof.Wait()
	}
	bar := r.bar(int(r.cfg.Duration/time.Second), fmt.Sprintf("%s %.0f/s", r.t.Name, rate))
	cpuTimer := time.NewTimer(r.cfg.Duration)
	defer cpuTimer.Stop()
	var cpuSecs, cpuWall float64
	ticks := map[int]*hdrHist{}
	all := newHist()
	done := 0
	var pubSecs float64
	dropped := 0
	var clientCPU float64
	for done < len(r.procs) {
		wm, err := r.nextOrTimer(ctx, cpuTimer)
		if err != nil {
			return ph, err
		}
		if wm == nil {
			cpu1, _ := readProcs(r.t.PIDs)
			cpuSecs, cpuWall = cpu1.CPUSecs-cpu0.CPUSecs, time.Since(t0).Seconds()
			ph.ServerRSS = cpu1.RSS
			continue
		}
		switch wm.m.Type {
		case "tick":
			h := ticks[wm.m.Second]
			if h == nil {
				h = &hdrHist{newHist(), 0}
				ticks[wm.m.Second] = h
			}
			wm.m.Latency.mergeInto(h.h)
			h.n++
			if bar != nil && h.n == 1 {
				_ = bar.Add(1)
			}
		case "phase":
			done++
			wm.m.Latency.mergeInto(all)
			ph.Sent += wm.m.Sent
			ph.Received += wm.m.Received
			ph.Lost += wm.m.Lost
			ph.Dup += wm.m.Dup
			ph.OOO += wm.m.OOO
			ph.Bad += wm.m.Bad
			ph.PubFail += wm.m.PubFail
			ph.Backlog += wm.m.Backlog
			ph.ClientRSS += wm.m.RSS
			pubSecs = max(pubSecs, wm.m.PubSecs)
			clientCPU += wm.m.CPUSecs
			dropped += wm.m.Dropped
		case "progress":
			r.note(*wm)
		case "error":
			return ph, fmt.Errorf("worker %d: %s", wm.w, wm.m.Error)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	r.dropped = dropped
	if wall := time.Since(t0).Seconds(); wall > 0 {
		ph.ClientCPU = clientCPU / wall
	}
	if cpuWall > 0 {
		ph.ServerCPU = cpuSecs / cpuWall
	}
	if pubSecs > 0 {
		ph.Achieved = float64(ph.Sent) / pubSecs
		ph.Delivered = float64(ph.Received) / pubSecs
	}
	ph.Latency = percentiles(all)
	offset := 0.0
	if n := len(tr.Timeline); n > 0 {
		offset = tr.Timeline[n-1].T + 1
	}
	secs := make([]int, 0, len(ticks))
	for s := range ticks {
		secs = append(secs, s)
	}
	sort.Ints(secs)
	for _, s := range secs {
		tr.Timeline = append(tr.Timeline, TimePoint{T: offset + float64(s), Phase: i, Rate: rate, Percentiles: percentiles(ticks[s].h)})
	}
	return ph, nil
}

type hdrHist struct {
	h *hdrhistogram.Histogram
	n int
}

// nextOrTimer is next, or nil when timer fires first.
func (r *run) nextOrTimer(ctx context.Context, timer *time.Timer) (*workerMsg, error) {
	select {
	case <-timer.C:
		return nil, nil
	default:
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, nil
	case wm := <-r.msgs:
		if wm.m.Type == "exit" {
			return nil, fmt.Errorf("worker %d ended early", wm.w)
		}
		return &wm, nil
	}
}
