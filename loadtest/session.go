package loadtest

import (
	"sync/atomic"
	"time"
)

// session is one simulated browser tab: its channel, its MQTT connection
// and what it has received. The counters are written by the session's own
// read goroutine (and sent by the publisher) and read by the worker.
type session struct {
	replica int
	topic   string // where events for this session are published
	channel string
	c       *mqttConn

	sent atomic.Int64 // events published to this session (its last seq)
	got  atomic.Int64 // distinct events received
	dup  atomic.Int64
	ooo  atomic.Int64 // arrived after a later one
	bad  atomic.Int64 // payload without a measurement record
	down atomic.Bool  // connection ended before the worker closed it

	// Only the read goroutine touches these.
	maxSeq int64
	seen   []uint64 // bit per seq
}

// onEvent accounts for one delivered payload.
func (s *session) onEvent(payload []byte, now time.Time, rec *recorder) {
	seq, sentAt, ok := parseRecord(payload)
	if !ok || seq <= 0 {
		s.bad.Add(1)
		return
	}
	w, bit := int(seq/64), uint64(1)<<(seq%64)
	for len(s.seen) <= w {
		s.seen = append(s.seen, 0)
	}
	if s.seen[w]&bit != 0 {
		s.dup.Add(1)
		return
	}
	s.seen[w] |= bit
	if seq < s.maxSeq {
		s.ooo.Add(1)
	} else {
		s.maxSeq = seq
	}
	s.got.Add(1)
	rec.record(now.Sub(time.Unix(0, sentAt)))
}

// readLoop serves the connection until it ends: events are recorded and,
// at QoS 1, acknowledged at once as MQTT.js does.
func (s *session) readLoop(rec *recorder, closing *atomic.Bool) {
	var ack [4]byte
	for {
		p, err := s.c.read()
		if err != nil {
			if !closing.Load() {
				s.down.Store(true)
			}
			return
		}
		switch p.typ {
		case pktPublish:
			s.onEvent(p.payload, time.Now(), rec)
			if p.pid != 0 {
				if err := s.c.write(appendPuback(ack[:0], p.pid)); err != nil {
					continue // the read will fail next
				}
			}
		case pktDisconnect:
			if !closing.Load() {
				s.down.Store(true)
			}
			return
		}
	}
}
