package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

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
	m := message{Type: msgProgress, Connected: len(w.sessions), Failed: w.failed, Attempted: attempted}
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
