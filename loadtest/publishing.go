package loadtest

import (
	"context"
	"fmt"
	"time"
)

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
	w.active = c.Publishers
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
			w.send(message{Type: msgTick, Phase: c.Index, Second: second, Latency: &lat})
			second++
			nextWindow = nextWindow.Add(time.Second)
		}
	}
	secs = time.Since(start).Seconds()
	backlog = max(int64(c.Rate*secs)-sent, 0)
	// Drain: wait until every sent event has arrived, or Drain has passed.
	deadline := time.Now().Add(c.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if t, _ := w.totals(); t.Received+t.Bad >= t.Sent && w.httpIdle() {
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
	if w.active > 0 && w.active < len(set) {
		set = set[:w.active]
	}
	for i := range set {
		p := set[(k+i)%len(set)]
		if p.room(qos) {
			p.add(s, qos, w.cfg.PayloadBytes)
			return true
		}
	}
	return false
}
