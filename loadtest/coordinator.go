// Package loadtest opens many browser-like MQTT-over-WebSocket sessions
// against a Herald gateway (one or several replicas) or a plain MQTT broker
// such as Mosquitto, publishes events to them at fixed rates and measures
// connect success and time, publish→deliver latency, loss, duplicates and
// order, and the server's memory and CPU. A run spreads its sessions over
// worker processes (each under its own file limit) and aggregates their
// JSON results. It only ever targets loopback addresses.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	Name     string      // "herald", "mosquitto"
	Kind     Kind        // KindHerald or KindMQTT
	Replicas []Replica   // sessions are spread round robin
	App      string      // Herald app id
	APIKey   string      // Herald app API key (sessions over HTTP, service publisher)
	Secret   string      // Herald app secret (offline minting)
	Mint     MintMode    // MintHTTP (default) or MintOffline
	Publish  PublishMode // PublishMQTT (default) or PublishHTTP
	PIDs     []int       // server processes to sample; none: no server figures
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
	Publishers int           // connections per worker per replica: at least the largest of PublisherCounts
	// PublisherCounts sweeps the number of those connections used to
	// publish: every rate is run with each count. Default: Publishers.
	PublisherCounts []int
	// Views are the CPU placements each publisher count and rate is run
	// in (default ViewShared). ViewPinned needs the targets' PIDs and
	// places the servers on ServerCPUs (default the first CPU) and the
	// load generator on ClientCPUs (default the last).
	Views                  []View
	ServerCPUs, ClientCPUs []int
	SourceIPs              int // loopback source addresses per worker; default sessions/worker / 10000 + 1
	Origin                 string
	Timeout                time.Duration // per connect
	HardCap                time.Duration
	ProfileDir             string    // where server profiles are saved
	Spawn                  Spawner   // default InProcess
	Progress               io.Writer // progress bar; nil: none
	Logger                 *slog.Logger
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
	if c.Publishers <= 0 && len(c.PublisherCounts) == 0 {
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
		if err := c.Targets[i].withDefaults(); err != nil {
			return c, err
		}
	}
	if err := c.checkViews(); err != nil {
		return c, err
	}
	return c, nil
}

// withDefaults fills in t's modes and checks it.
func (t *Target) withDefaults() error {
	if len(t.Replicas) == 0 {
		return fmt.Errorf("%w: target %q has no replicas", ErrConfig, t.Name)
	}
	if t.Mint == "" {
		t.Mint = MintHTTP
	}
	if t.Publish == "" {
		t.Publish = PublishMQTT
	}
	if err := t.checkModes(); err != nil {
		return err
	}
	if t.Kind == KindMQTT && t.Publish == PublishHTTP {
		return fmt.Errorf("%w: target %q is a plain broker; it has no HTTP API to publish through", ErrConfig, t.Name)
	}
	for _, r := range t.Replicas {
		for _, u := range []string{r.WS, r.Base} {
			if u == "" {
				continue
			}
			if err := CheckLoopback(u); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkModes refuses kinds and modes the load generator does not know.
func (t *Target) checkModes() error {
	switch {
	case t.Kind != KindHerald && t.Kind != KindMQTT:
		return fmt.Errorf("%w: target %q: kind %q (want %s or %s)", ErrConfig, t.Name, t.Kind, KindHerald, KindMQTT)
	case t.Mint != MintHTTP && t.Mint != MintOffline:
		return fmt.Errorf("%w: target %q: mint %q (want %s or %s)", ErrConfig, t.Name, t.Mint, MintHTTP, MintOffline)
	case t.Publish != PublishMQTT && t.Publish != PublishHTTP:
		return fmt.Errorf("%w: target %q: publish %q (want %s or %s)", ErrConfig, t.Name, t.Publish, PublishMQTT, PublishHTTP)
	}
	return nil
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
			DurationSecs: cfg.Duration.Seconds(), QoS: cfg.QoS, PayloadBytes: cfg.Payload,
			Publishers: cfg.PublisherCounts, Views: cfg.Views, ServerCPUs: cfg.ServerCPUs, ClientCPUs: cfg.ClientCPUs},
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

	view View // where the processes run now; "" before the first phase

	mu        sync.Mutex
	connected []int // latest per worker
	failed    []int
	memory    []MemPoint
	dropped   int // sessions whose connection ended, as of the last phase
}

func runTarget(ctx context.Context, cfg Config, t Target) (tr TargetResult, err error) {
	tr = TargetResult{Name: t.Name, Kind: t.Kind, Replicas: len(t.Replicas), Workers: cfg.Workers,
		Sessions: cfg.Sessions, ServerPIDs: t.PIDs, Reasons: map[string]int{}}
	r := &run{cfg: cfg, t: t, msgs: make(chan workerMsg, 1024), start: time.Now(),
		connected: make([]int, cfg.Workers), failed: make([]int, cfg.Workers)}
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
	defer r.unplace()
	if err := r.startWorkers(ctx); err != nil {
		return tr, err
	}
	if err := r.ramp(ctx, &tr); err != nil {
		return tr, err
	}
	cpu1, _ := readProcs(t.PIDs)
	tr.RampCPUSecs = cpu1.CPUSecs - cpu0.CPUSecs
	if err := r.idle(ctx, &tr, baseline); err != nil {
		return tr, err
	}
	steps := cfg.steps()
	for i, st := range steps {
		ph, err := r.phase(ctx, i, st, i == len(steps)-1, &tr)
		tr.Phases = append(tr.Phases, ph)
		if err != nil {
			return tr, err
		}
	}
	tr.SessionsDropped = r.dropped
	return tr, nil
}

// ramp waits for every worker's "ready" and sums their connect figures
// into tr.
func (r *run) ramp(ctx context.Context, tr *TargetResult) error {
	bar := r.bar(r.cfg.Sessions, r.t.Name+" connect")
	connHist := newHist()
	for ready := 0; ready < r.cfg.Workers; {
		wm, err := r.next(ctx)
		if err != nil {
			return err
		}
		switch wm.m.Type {
		case msgProgress:
			r.note(wm)
			if bar != nil {
				_ = bar.Set(r.total())
			}
		case msgReady:
			r.note(wm)
			ready++
			tr.addReady(wm.m, connHist)
		case msgError:
			return fmt.Errorf("worker %d: %s", wm.w, wm.m.Error)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	tr.ConnectTime = percentiles(connHist)
	if tr.RampSecs > 0 {
		tr.RampRate = float64(tr.Connected) / tr.RampSecs
	}
	return nil
}

// addReady sums one worker's "ready" into tr.
func (tr *TargetResult) addReady(m message, connHist *hdrhistogram.Histogram) {
	tr.Connected += m.Connected
	tr.Failed += m.Failed
	for k, v := range m.Reasons {
		tr.Reasons[k] += v
	}
	tr.ClientRSS += m.RSS
	tr.RampSecs = max(tr.RampSecs, m.RampSecs)
	if m.Connect != nil {
		m.Connect.mergeInto(connHist)
	}
}

// idle takes the reading once the ramp has settled: server memory per
// process and per session, and a heap profile.
func (r *run) idle(ctx context.Context, tr *TargetResult, baseline map[int]int64) error {
	if err := sleepCtx(ctx, r.cfg.Settle); err != nil {
		return err
	}
	per := tr.Connected / max(len(r.t.Replicas), 1)
	for _, p := range r.t.PIDs {
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
	if tr.Connected > 0 && len(r.t.PIDs) > 0 {
		tr.RSSPerSession = float64(tr.IdleRSS-tr.BaselineRSS) / float64(tr.Connected)
	}
	if err := fetchProfiles(ctx, r.cfg.ProfileDir, r.t.Name, r.t.PProf, "heap", 0); err != nil {
		r.cfg.Logger.Warn("heap profile", "target", r.t.Name, "error", err)
	}
	return nil
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
