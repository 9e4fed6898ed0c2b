package loadtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldgw/herald/tenant"
)

// maxConnecting bounds the connects one worker has in progress, so a slow
// target makes the ramp lag instead of piling up goroutines.
const maxConnecting = 256

// worker is one load generator process: its sessions and publishers.
type worker struct {
	cfg     WorkerConfig
	out     *json.Encoder
	outMu   sync.Mutex
	dialers *dialers
	http    *http.Client // POST /v1/sessions
	minter  *tenant.Registry
	rec     *recorder
	closing atomic.Bool

	mu       sync.Mutex
	sessions []*session
	failed   int
	reasons  map[string]int
	connHist *recorder // connect times

	pubs   [][]*mqttPublisher // per replica
	active int                // publishers per replica the current phase uses (0: all)
	hpubs  []*httpPublisher   // per replica
	wg     sync.WaitGroup     // session and publisher read loops
}

// RunWorker runs one worker: it reads a WorkerConfig line and then
// commands from in, opens the sessions at the configured ramp, and writes
// progress and results as JSON lines to out. It returns after "stop" (or
// when in ends or ctx is cancelled), with every connection closed.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	if !sc.Scan() {
		return fmt.Errorf("worker: no config on stdin: %w", errors.Join(sc.Err(), io.ErrUnexpectedEOF))
	}
	var cfg WorkerConfig
	if err := json.Unmarshal(sc.Bytes(), &cfg); err != nil {
		return fmt.Errorf("worker config: %w", err)
	}
	w := &worker{cfg: cfg, out: json.NewEncoder(out), rec: newRecorder(), connHist: newRecorder(), reasons: map[string]int{}}
	err := w.run(ctx, sc)
	if err != nil {
		w.send(message{Type: msgError, Error: err.Error()})
	}
	return err
}

func (w *worker) send(m message) {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	_ = w.out.Encode(m)
}

func (w *worker) run(ctx context.Context, sc *bufio.Scanner) error {
	if err := w.setup(); err != nil {
		return err
	}
	defer w.closeAll()
	cmds := readCommands(sc)
	pctx, cancelPubs := context.WithCancel(ctx)
	defer cancelPubs()
	if err := w.startPublishers(pctx); err != nil {
		return err
	}
	start := time.Now()
	w.ramp(ctx)
	w.reportReady(start)
	go w.keepAlive(pctx)
	var totals Delivery // as of the end of the last phase
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c, ok := <-cmds:
			if !ok || c.Cmd == cmdStop {
				w.send(message{Type: msgDone})
				return nil
			}
			if c.Cmd == cmdPhase {
				totals = w.runPhase(ctx, c, totals)
			}
		}
	}
}

// setup checks the replicas and prepares the dialers, the HTTP client and
// offline minting.
func (w *worker) setup() error {
	cfg := w.cfg
	if len(cfg.Replicas) == 0 {
		return errors.New("worker: no replicas")
	}
	for _, r := range cfg.Replicas {
		if err := CheckLoopback(r.WS); err != nil {
			return err
		}
		if r.Base != "" {
			if err := CheckLoopback(r.Base); err != nil {
				return err
			}
		}
	}
	var err error
	if w.dialers, err = newDialers(cfg.SourceIPs, cfg.Timeout); err != nil {
		return err
	}
	w.http = &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}
	if cfg.Kind == KindHerald && cfg.Mint == MintOffline {
		if w.minter, err = tenant.NewRegistry([]tenant.App{{ID: cfg.App, APIKey: cfg.APIKey, Secret: cfg.Secret}}); err != nil {
			return fmt.Errorf("offline minting: %w", err)
		}
	}
	return nil
}

// readCommands reads commands on their own goroutine, so the ramp can
// report progress meanwhile; the channel closes when stdin does.
func readCommands(sc *bufio.Scanner) <-chan command {
	cmds := make(chan command)
	go func() {
		defer close(cmds)
		for sc.Scan() {
			var c command
			if json.Unmarshal(sc.Bytes(), &c) == nil {
				cmds <- c
			}
		}
	}()
	return cmds
}

// reportReady sends "ready" with the figures of the ramp begun at start.
func (w *worker) reportReady(start time.Time) {
	w.mu.Lock()
	connected, failed := len(w.sessions), w.failed
	reasons := copyMap(w.reasons)
	w.mu.Unlock()
	ch := w.connHist.takePhase()
	w.send(message{Type: msgReady, Connected: connected, Attempted: w.cfg.Sessions, Failed: failed, Reasons: reasons,
		Connect: &ch, RampSecs: time.Since(start).Seconds(), RSS: selfRSS()})
}

// runPhase runs one phase and reports what it delivered: the sessions'
// totals now against prev, the totals after the previous phase. It returns
// the totals now.
func (w *worker) runPhase(ctx context.Context, c command, prev Delivery) Delivery {
	cpu0 := selfCPU()
	backlog, secs := w.phase(ctx, c)
	cpu := selfCPU() - cpu0
	now, down := w.totals()
	d := now.since(prev)
	d.Backlog = backlog
	for _, rp := range w.pubs {
		for _, p := range rp {
			d.PubFail += p.failed.Swap(0)
		}
	}
	for _, h := range w.hpubs {
		d.PubFail += h.failed.Swap(0)
	}
	lat := w.rec.takePhase()
	w.send(message{Type: msgPhase, Phase: c.Index, Latency: &lat, Delivery: &d, Dropped: down,
		PubSecs: secs, CPUSecs: cpu, RSS: selfRSS()})
	return now
}

func copyMap(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// totals sums the sessions' counters, and counts the sessions that are
// down.
func (w *worker) totals() (t Delivery, down int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.sessions {
		t.Sent += s.sent.Load()
		t.Received += s.got.Load()
		t.Dup += s.dup.Load()
		t.OOO += s.ooo.Load()
		t.Bad += s.bad.Load()
		if s.down.Load() {
			down++
		}
	}
	return t, down
}

// closeAll ends every connection and waits for the read loops.
func (w *worker) closeAll() {
	w.mu.Lock()
	w.closing.Store(true)
	ss := w.sessions
	w.mu.Unlock()
	for _, s := range ss {
		s.c.close()
	}
	for _, rp := range w.pubs {
		for _, p := range rp {
			p.c.close()
		}
	}
	w.wg.Wait()
	for _, h := range w.hpubs {
		h.wg.Wait()
	}
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
