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
	"strings"
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

	pubs  [][]*mqttPublisher // per replica
	hpubs []*httpPublisher   // per replica
	wg    sync.WaitGroup     // session and publisher read loops
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
		w.send(message{Type: "error", Error: err.Error()})
	}
	return err
}

func (w *worker) send(m message) {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	_ = w.out.Encode(m)
}

func (w *worker) run(ctx context.Context, sc *bufio.Scanner) error {
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
	defer w.closeAll()

	// Commands arrive on their own goroutine so the ramp can report
	// progress meanwhile; the scanner ends when stdin closes.
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

	pctx, cancelPubs := context.WithCancel(ctx)
	defer cancelPubs()
	if err := w.startPublishers(pctx); err != nil {
		return err
	}
	start := time.Now()
	w.ramp(ctx)
	w.mu.Lock()
	connected, failed := len(w.sessions), w.failed
	reasons := copyMap(w.reasons)
	w.mu.Unlock()
	ch := w.connHist.takePhase()
	w.send(message{Type: "ready", Connected: connected, Attempted: cfg.Sessions, Failed: failed, Reasons: reasons,
		Connect: &ch, RampSecs: time.Since(start).Seconds(), RSS: selfRSS()})

	go w.keepAlive(pctx)
	var prevSent, prevGot, prevDup, prevOOO, prevBad int64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c, ok := <-cmds:
			if !ok || c.Cmd == "stop" {
				w.send(message{Type: "done"})
				return nil
			}
			if c.Cmd != "phase" {
				continue
			}
			cpu0 := selfCPU()
			backlog, secs := w.phase(ctx, c)
			cpu := selfCPU() - cpu0
			sent, got, dup, ooo, bad, down := w.totals()
			var pubFail int64
			for _, rp := range w.pubs {
				for _, p := range rp {
					pubFail += p.failed.Swap(0)
				}
			}
			for _, h := range w.hpubs {
				pubFail += h.failed.Swap(0)
			}
			lat := w.rec.takePhase()
			w.send(message{Type: "phase", Phase: c.Index, Latency: &lat,
				Sent: sent - prevSent, Received: got - prevGot, Lost: (sent - prevSent) - (got - prevGot),
				Dup: dup - prevDup, OOO: ooo - prevOOO, Bad: bad - prevBad, Dropped: down,
				PubFail: pubFail, Backlog: backlog, PubSecs: secs, CPUSecs: cpu, RSS: selfRSS()})
			prevSent, prevGot, prevDup, prevOOO, prevBad = sent, got, dup, ooo, bad
		}
	}
}

func copyMap(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (w *worker) totals() (sent, got, dup, ooo, bad int64, down int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.sessions {
		sent += s.sent.Load()
		got += s.got.Load()
		dup += s.dup.Load()
		ooo += s.ooo.Load()
		bad += s.bad.Load()
		if s.down.Load() {
			down++
		}
	}
	return
}

// startPublishers opens the service connections (MQTT mode) or the HTTP
// publishers, one set per replica.
func (w *worker) startPublishers(ctx context.Context) error {
	cfg := w.cfg
	n := max(cfg.Publishers, 1)
	for ri, r := range cfg.Replicas {
		if cfg.Publish == PublishHTTP {
			if r.Base == "" {
				return fmt.Errorf("replica %d: HTTP publishing needs a base URL", ri)
			}
			h := newHTTPPublisher(r.Base, cfg.App, cfg.APIKey, cfg.PayloadBytes, 16*n)
			h.run(ctx, 16*n)
			w.hpubs = append(w.hpubs, h)
			continue
		}
		var set []*mqttPublisher
		for k := 0; k < n; k++ {
			id := fmt.Sprintf("svc-lt-%s-w%d-r%d-%d", cfg.RunID, cfg.Index, ri, k)
			user, pass := cfg.App, cfg.APIKey
			if cfg.Kind == KindMQTT {
				id, user, pass = "lt-pub-"+randomID(), "", ""
			}
			dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			c, err := dialMQTT(dctx, w.dialers.pick(), r.WS, cfg.Origin)
			cancel()
			if err != nil {
				return fmt.Errorf("publisher for %s: %w", r.WS, err)
			}
			win, err := c.connect(time.Now().Add(cfg.Timeout), id, user, pass, 0)
			if err != nil {
				c.close()
				return fmt.Errorf("publisher for %s: %w", r.WS, err)
			}
			p := &mqttPublisher{c: c, window: int64(win)}
			w.wg.Add(1)
			go func() { defer w.wg.Done(); p.readLoop() }()
			set = append(set, p)
		}
		w.pubs = append(w.pubs, set)
	}
	return nil
}

// ramp opens cfg.Sessions sessions at cfg.Ramp per second, reporting
// progress every 250 ms, and returns when every attempt has finished.
func (w *worker) ramp(ctx context.Context) {
	cfg := w.cfg
	sem := make(chan struct{}, maxConnecting)
	var inflight sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	lastReport := start
	launched := 0
	for launched < cfg.Sessions && ctx.Err() == nil {
		<-tick.C
		due := cfg.Sessions
		if cfg.Ramp > 0 {
			due = min(cfg.Sessions, int(cfg.Ramp*time.Since(start).Seconds())+1)
		}
		for ; launched < due; launched++ {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				launched = cfg.Sessions
				continue
			}
			idx := cfg.FirstSession + launched
			cl := w.dialers.pick()
			inflight.Add(1)
			go w.open(ctx, idx, cl, func() { <-sem; inflight.Done() })
		}
		if time.Since(lastReport) >= 250*time.Millisecond {
			lastReport = time.Now()
			w.progress(launched)
		}
	}
	inflight.Wait()
	w.progress(launched)
}

func (w *worker) progress(attempted int) {
	w.mu.Lock()
	m := message{Type: "progress", Connected: len(w.sessions), Failed: w.failed, Attempted: attempted}
	w.mu.Unlock()
	m.RSS = selfRSS()
	w.send(m)
}

// open mints, dials, connects and subscribes one session; on success the
// goroutine becomes the session's reader. finished is called once the
// attempt is over either way.
func (w *worker) open(ctx context.Context, idx int, cl *http.Client, finished func()) {
	released := false
	release := func() {
		if !released {
			released = true
			finished()
		}
	}
	defer release()
	t0 := time.Now()
	s, err := w.dialSession(ctx, idx, cl)
	if err != nil {
		w.mu.Lock()
		w.failed++
		w.reasons[reasonOf(err)]++
		w.mu.Unlock()
		return
	}
	w.connHist.record(time.Since(t0))
	w.mu.Lock()
	if w.closing.Load() {
		w.mu.Unlock()
		s.c.close()
		return
	}
	w.sessions = append(w.sessions, s)
	w.wg.Add(1)
	w.mu.Unlock()
	release()
	defer w.wg.Done()
	s.readLoop(w.rec, &w.closing)
}

type mintedSession struct {
	Channel string `json:"channel"`
	Token   string `json:"token"`
	Topic   string `json:"topic"`
}

func (w *worker) dialSession(ctx context.Context, idx int, cl *http.Client) (*session, error) {
	cfg := w.cfg
	ri := idx % len(cfg.Replicas)
	r := cfg.Replicas[ri]
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	var id, user, pass, filter, pubTopic string
	switch {
	case cfg.Kind == KindMQTT:
		id = randomID()
		filter = "apps/lt/channels/" + id + "/#"
		pubTopic = "apps/lt/channels/" + id + "/events"
	case cfg.Mint == MintOffline:
		ms, err := w.minter.Mint(cfg.App, time.Now())
		if err != nil {
			return nil, &connError{Reason: "mint", Err: err}
		}
		id, user, pass = ms.Channel, cfg.App, ms.Token
	default:
		ms, err := w.mintHTTP(ctx, r.Base)
		if err != nil {
			return nil, err
		}
		id, user, pass = ms.Channel, cfg.App, ms.Token
	}
	if cfg.Kind == KindHerald {
		filter = "apps/" + cfg.App + "/channels/" + id + "/#"
		pubTopic = "apps/" + cfg.App + "/channels/" + id + "/events"
	}
	c, err := dialMQTT(ctx, cl, r.WS, cfg.Origin)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	if _, err := c.connect(deadline, id, user, pass, uint16(cfg.KeepAlive/time.Second)); err != nil {
		c.close()
		return nil, err
	}
	if err := c.subscribe(deadline, filter, cfg.QoS); err != nil {
		c.close()
		return nil, err
	}
	return &session{replica: ri, topic: pubTopic, channel: id, c: c}, nil
}

func (w *worker) mintHTTP(ctx context.Context, base string) (mintedSession, error) {
	var ms mintedSession
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sessions",
		strings.NewReader(`{"app":"`+w.cfg.App+`"}`))
	if err != nil {
		return ms, &connError{Reason: "mint_request", Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if w.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+w.cfg.APIKey)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return ms, &connError{Reason: "mint_" + classifyNet(err), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return ms, &connError{Reason: fmt.Sprintf("mint_http_%d", resp.StatusCode), Err: errors.New("session not minted")}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&ms); err != nil {
		return ms, &connError{Reason: "mint_decode", Err: err}
	}
	return ms, nil
}

// keepAlive pings every session once per 3/4 of its keep-alive, spread
// evenly, as a browser tab's MQTT.js timer does.
func (w *worker) keepAlive(ctx context.Context) {
	if w.cfg.KeepAlive <= 0 {
		return
	}
	period := max(int(w.cfg.KeepAlive*3/4/time.Second), 1)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		ss := w.sessions
		w.mu.Unlock()
		for i := k % period; i < len(ss); i += period {
			if !ss[i].down.Load() {
				_ = ss[i].c.write(pingreq)
			}
		}
	}
}

// phase publishes at c.Rate for c.Duration, spread round robin over the
// live sessions, sending a latency window every second; then waits
// c.Drain for the stragglers. It returns the events it could not send
// on time and the publishing time.
func (w *worker) phase(ctx context.Context, c command) (backlog int64, secs float64) {
	w.mu.Lock()
	ss := append([]*session(nil), w.sessions...)
	w.mu.Unlock()
	if len(ss) == 0 || c.Rate <= 0 {
		return 0, 0
	}
	qos := w.cfg.QoS
	start := time.Now()
	end := start.Add(c.Duration)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	nextWindow := start.Add(time.Second)
	second := 0
	var sent int64
	next := 0
	for now := start; now.Before(end) && ctx.Err() == nil; now = time.Now() {
		<-tick.C
		due := int64(c.Rate*time.Since(start).Seconds()) - sent
		for ; due > 0; due-- {
			s := ss[next%len(ss)]
			if s.down.Load() {
				// Skip a dead session without spinning over all of them.
				next++
				if next%len(ss) == 0 {
					break
				}
				due++
				continue
			}
			if !w.enqueue(s, qos, next) {
				break
			}
			next++
			sent++
		}
		for _, rp := range w.pubs {
			for _, p := range rp {
				_ = p.flush()
			}
		}
		if time.Now().After(nextWindow) {
			lat := w.rec.takeWindow()
			w.send(message{Type: "tick", Phase: c.Index, Second: second, Latency: &lat})
			second++
			nextWindow = nextWindow.Add(time.Second)
		}
	}
	secs = time.Since(start).Seconds()
	backlog = max(int64(c.Rate*secs)-sent, 0)
	// Drain: wait until every sent event has arrived, or Drain has passed.
	deadline := time.Now().Add(c.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		s, g, d, _, b, _ := w.totals()
		_ = d
		if g+b >= s && w.httpIdle() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return backlog, secs
}

func (w *worker) httpIdle() bool {
	for _, h := range w.hpubs {
		if len(h.work) > 0 {
			return false
		}
	}
	return true
}

// enqueue hands one event for s to a publisher of its replica; false when
// every publisher's window is full.
func (w *worker) enqueue(s *session, qos byte, k int) bool {
	if w.cfg.Publish == PublishHTTP {
		return w.hpubs[s.replica].offer(s)
	}
	set := w.pubs[s.replica]
	for i := range set {
		p := set[(k+i)%len(set)]
		if p.room(qos) {
			p.add(s, qos, w.cfg.PayloadBytes)
			return true
		}
	}
	return false
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
