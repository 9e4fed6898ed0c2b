package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// The coordinator's side of its worker processes: start them, read their
// messages, send them commands, stop them.

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
	r.msgs <- workerMsg{w: w, m: message{Type: msgExit}}
}

// next returns the next worker message; a worker ending early is an error.
func (r *run) next(ctx context.Context) (workerMsg, error) {
	select {
	case <-ctx.Done():
		return workerMsg{}, ctx.Err()
	case wm := <-r.msgs:
		if wm.m.Type == msgExit {
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
		if c.Cmd == cmdPhase {
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
	_ = r.send(command{Cmd: cmdStop})
	for _, p := range r.procs {
		_ = p.Stdin.Close()
	}
	exited := 0
	limit := time.After(30 * time.Second)
	for exited < len(r.procs) {
		select {
		case wm := <-r.msgs:
			if wm.m.Type == msgExit {
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
		if wm.m.Type == msgExit {
			return nil, fmt.Errorf("worker %d ended early", wm.w)
		}
		return &wm, nil
	}
}
