package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// mqttPublisher is a service connection that publishes events straight to
// the broker: on Herald username = app, password = API key, client id
// "svc-…"; on a plain broker anonymous. At QoS 1 it keeps at most the
// broker's Receive Maximum unacknowledged.
type mqttPublisher struct {
	c        *mqttConn
	window   int64
	inflight atomic.Int64
	pid      uint16
	buf      []byte
	failed   atomic.Int64 // PUBACKs with an error reason
	down     atomic.Bool
}

func (p *mqttPublisher) readLoop() {
	for {
		pk, err := p.c.read()
		if err != nil {
			p.down.Store(true)
			return
		}
		switch pk.typ {
		case pktPuback:
			p.inflight.Add(-1)
			if pk.reason >= 0x80 {
				p.failed.Add(1)
			}
		case pktDisconnect:
			p.down.Store(true)
			return
		}
	}
}

// room reports whether one more message at qos fits the window.
func (p *mqttPublisher) room(qos byte) bool {
	return !p.down.Load() && (qos == 0 || p.inflight.Load() < p.window)
}

// add encodes one event for s into the pending batch.
func (p *mqttPublisher) add(s *session, qos byte, size int) {
	seq := s.sent.Add(1)
	var pid uint16
	if qos > 0 {
		p.pid++
		if p.pid == 0 {
			p.pid = 1
		}
		pid = p.pid
		p.inflight.Add(1)
	}
	var pl [128]byte
	payload := appendPayload(pl[:0], seq, time.Now().UnixNano(), size)
	p.buf = appendPublish(p.buf, s.topic, qos, pid, payload)
	if len(p.buf) >= maxBatch {
		_ = p.flush()
	}
}

// maxBatch bounds one batched WebSocket message, well under any broker's
// frame limit (Herald's is 132 KiB) when a slow tick has many events due.
const maxBatch = 16 << 10

// flush writes the batch as one WebSocket message: MQTT over WebSocket
// allows several packets per message, and one write per tick instead of
// one per event keeps the generator's own CPU out of the measurement.
func (p *mqttPublisher) flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	err := p.c.write(p.buf)
	p.buf = p.buf[:0]
	if err != nil {
		p.down.Store(true)
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// httpPublisher posts events through POST /v1/events with a bounded
// number of requests in flight per replica.
type httpPublisher struct {
	client *http.Client
	url    string // …/v1/events
	key    string
	app    string
	size   int
	work   chan *session
	failed atomic.Int64
	wg     sync.WaitGroup
}

func newHTTPPublisher(base, app, key string, size, conc int) *httpPublisher {
	return &httpPublisher{
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, IdleConnTimeout: 30 * time.Second,
		}},
		url: base + "/v1/events", key: key, app: app, size: size,
		work: make(chan *session, conc*4),
	}
}

// run posts queued events with conc goroutines until ctx ends.
func (h *httpPublisher) run(ctx context.Context, conc int) {
	for i := 0; i < conc; i++ {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case s := <-h.work:
					if err := h.post(ctx, s); err != nil {
						h.failed.Add(1)
					}
				}
			}
		}()
	}
}

// offer queues an event for s, reporting false when the queue is full
// (the gateway is not keeping up with the rate).
func (h *httpPublisher) offer(s *session) bool {
	select {
	case h.work <- s:
		return true
	default:
		return false
	}
}

type loadEnvelope struct {
	V       int             `json:"v"`
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Channel string          `json:"channel"`
	Seq     int64           `json:"seq"`
	Time    time.Time       `json:"time"`
	Data    json.RawMessage `json:"data"`
}

func (h *httpPublisher) post(ctx context.Context, s *session) error {
	seq := s.sent.Add(1)
	now := time.Now()
	rec := appendPayload(nil, seq, now.UnixNano(), h.size)
	data, _ := json.Marshal(map[string]string{"lt": string(rec)})
	body, _ := json.Marshal(loadEnvelope{V: 1, Type: "x.loadtest", ID: "evt_lt_" + s.channel + "_" + strconv.FormatInt(seq, 10), Channel: s.channel, Seq: seq, Time: now.UTC(), Data: data})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("event request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+h.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("post event: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("post event to %s: status %d", h.url, resp.StatusCode)
	}
	return nil
}
