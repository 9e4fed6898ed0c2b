package bridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ErrQueueFull is returned (wrapped) by MQTT.Publish when the outbound queue
// of the connection that carries the event's channel already holds
// MQTTConfig.OutboxMax messages: the broker has been unreachable (or slow)
// for long enough that accepting more would grow without bound.
var ErrQueueFull = errors.New("bridge: outbound queue full")

// ErrClosed is returned by MQTT.Publish after Close.
var ErrClosed = errors.New("bridge: closed")

// message is one queued publish.
type message struct {
	seq     uint64
	key     string // "app/channel": messages of one key are sent in order
	topic   string
	retain  bool
	expiry  uint32 // seconds; 0 = none
	payload []byte // nil when the outbox is on disk (read back when sent)
}

// outbox is the ordered, bounded outbound queue of one connection. Every
// message stays in it until the broker has acknowledged it (PUBACK), so a
// broker that restarts without its session state loses nothing either.
//
// Messages of one key (channel) leave strictly one after the other: the next
// is handed out only once the previous one is acknowledged. Different keys
// interleave freely, which is where the throughput comes from.
//
// With a directory every message is a file named by its sequence number
// (written to a temporary name and renamed, so a crash never leaves half a
// message). autopaho's own file queue is not used: it orders by file
// modification time, whose resolution on Linux is a scheduler tick, so a
// burst of events would come back out of order, and it rescans the
// directory for every message.
type outbox struct {
	dir string // "" keeps messages in memory only
	max int

	mu    sync.Mutex
	next  uint64
	n     int                   // messages held (pending + in flight)
	byKey map[string][]*message // pending messages per key, in order
	busy  map[string]bool       // keys with a message in flight
	ready []string              // keys with pending messages and none in flight
	wake  chan struct{}         // cap 1: something became ready
}

const fileSuffix = ".msg"

func openOutbox(dir string, max int) (*outbox, error) {
	o := &outbox{dir: dir, max: max, byKey: map[string][]*message{}, busy: map[string]bool{}, wake: make(chan struct{}, 1), next: 1}
	if dir == "" {
		return o, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bridge queue dir %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bridge queue dir %s: %w", dir, err)
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") { // an interrupted write
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		s, ok := strings.CutSuffix(name, fileSuffix)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		b, err := os.ReadFile(o.path(seq))
		if err != nil {
			return nil, fmt.Errorf("bridge queue: %w", err)
		}
		m, err := decodeMessage(b)
		if err != nil {
			// Keep it for inspection, out of the queue's way.
			_ = os.Rename(o.path(seq), o.path(seq)+".corrupt")
			continue
		}
		m.seq, m.payload = seq, nil
		o.add(m)
		o.next = seq + 1
	}
	return o, nil
}

func (o *outbox) path(seq uint64) string {
	return filepath.Join(o.dir, fmt.Sprintf("%020d%s", seq, fileSuffix))
}

// len returns the number of messages held.
func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// push appends a message; it is durable (on disk) when push returns.
func (o *outbox) push(m *message) error {
	o.mu.Lock()
	if o.n >= o.max {
		o.mu.Unlock()
		return fmt.Errorf("%d messages waiting for the broker: %w", o.max, ErrQueueFull)
	}
	m.seq = o.next
	o.next++
	o.n++ // reserve the slot while writing outside the lock
	o.mu.Unlock()

	if o.dir != "" {
		if err := o.write(m); err != nil {
			o.mu.Lock()
			o.n--
			o.mu.Unlock()
			return err
		}
		m.payload = nil
	}
	o.mu.Lock()
	o.n--
	o.add(m)
	o.mu.Unlock()
	return nil
}

// add files m under its key; o.mu is held.
func (o *outbox) add(m *message) {
	q := o.byKey[m.key]
	// Concurrent pushes may finish writing out of sequence order; keep each
	// key's list sorted so per-channel order is the order of Publish calls.
	i := len(q)
	for i > 0 && q[i-1].seq > m.seq {
		i--
	}
	q = slices.Insert(q, i, m)
	o.byKey[m.key] = q
	o.n++
	if len(q) == 1 && !o.busy[m.key] {
		o.ready = append(o.ready, m.key)
		o.signal()
	}
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) write(m *message) error {
	tmp := o.path(m.seq) + ".tmp"
	if err := os.WriteFile(tmp, encodeMessage(m), 0o600); err != nil {
		return fmt.Errorf("bridge queue write: %w", err)
	}
	if err := os.Rename(tmp, o.path(m.seq)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("bridge queue write: %w", err)
	}
	return nil
}

// take hands out the head message of the next ready key and marks the key
// busy, or returns nil when nothing is ready. The payload is loaded from
// disk if needed.
func (o *outbox) take() (*message, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.ready) > 0 {
		key := o.ready[0]
		o.ready = o.ready[1:]
		q := o.byKey[key]
		if len(q) == 0 || o.busy[key] {
			continue
		}
		m := q[0]
		o.busy[key] = true
		if m.payload == nil && o.dir != "" {
			b, err := os.ReadFile(o.path(m.seq))
			if err == nil {
				var d *message
				if d, err = decodeMessage(b); err == nil {
					out := *m
					out.payload = d.payload
					return &out, nil
				}
			}
			// Unreadable: drop it rather than block the channel forever.
			o.removeLocked(m)
			return nil, fmt.Errorf("bridge queue: message %d unreadable, dropped: %w", m.seq, err)
		}
		return m, nil
	}
	return nil, nil
}

// done removes a message the broker acknowledged (or refused for good).
func (o *outbox) done(m *message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.removeLocked(m)
}

func (o *outbox) removeLocked(m *message) {
	q := o.byKey[m.key]
	if len(q) > 0 && q[0].seq == m.seq {
		q = q[1:]
		o.n--
		if o.dir != "" {
			_ = os.Remove(o.path(m.seq))
		}
	}
	delete(o.busy, m.key)
	if len(q) == 0 {
		delete(o.byKey, m.key)
		return
	}
	o.byKey[m.key] = q
	o.ready = append(o.ready, m.key)
	o.signal()
}

// retry puts a message that was not acknowledged back at the head of its key.
func (o *outbox) retry(m *message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.busy, m.key)
	if len(o.byKey[m.key]) > 0 {
		o.ready = append(o.ready, m.key)
		o.signal()
	}
}

// Message file layout: "HQ1" magic, flags (bit 0 retain), expiry (4 bytes,
// big endian), topic length (2 bytes), topic, payload.
var magic = []byte("HQ1")

func encodeMessage(m *message) []byte {
	b := make([]byte, 0, len(magic)+7+len(m.topic)+len(m.payload))
	b = append(b, magic...)
	var flags byte
	if m.retain {
		flags |= 1
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint32(b, m.expiry)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.topic)))
	b = append(b, m.topic...)
	return append(b, m.payload...)
}

var errCorrupt = errors.New("bridge queue: corrupt message file")

func decodeMessage(b []byte) (*message, error) {
	if len(b) < len(magic)+7 || string(b[:len(magic)]) != string(magic) {
		return nil, errCorrupt
	}
	b = b[len(magic):]
	m := &message{retain: b[0]&1 != 0, expiry: binary.BigEndian.Uint32(b[1:5])}
	tl := int(binary.BigEndian.Uint16(b[5:7]))
	b = b[7:]
	if len(b) < tl || tl == 0 {
		return nil, errCorrupt
	}
	m.topic = string(b[:tl])
	m.payload = append([]byte{}, b[tl:]...)
	m.key = channelKey(m.topic)
	return m, nil
}

// channelKey is the ordering key of a topic: its first four levels
// (apps/{app}/channels/{channel}), or the whole topic if it is shorter.
func channelKey(topic string) string {
	n := 0
	for i := 0; i < len(topic); i++ {
		if topic[i] == '/' {
			n++
			if n == 4 {
				return topic[:i]
			}
		}
	}
	return topic
}
