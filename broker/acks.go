package broker

import (
	"errors"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// maxHeldAcks bounds the PUBACKs one connection may have waiting for
// storage; a publisher beyond it waits for the oldest before its next
// PUBLISH is read (mochi reads a connection's packets one at a time).
const maxHeldAcks = 1024

// errAckTimeout refuses a PUBLISH that found its connection's PUBACKs
// still waiting for storage after ackTimeout.
var errAckTimeout = errors.New("broker: acknowledgements waiting for storage too long")

// ackQueue holds a service connection's PUBACKs until the messages they
// acknowledge are on disk. mochi writes a QoS 1 PUBACK as soon as the
// publish hooks return, and reads the connection's next packet only then;
// waiting for the commit inside the hook (as before) gave a connection one
// commit per message however many it had in flight. Instead the hook
// returns at once and the PUBACK mochi writes is taken out of the byte
// stream here and released when storage answers: the next PUBLISHes are
// read meanwhile and share the next commit (group commit on one
// connection), and still no PUBACK goes out before its message is stored.
// PUBACKs leave in the order their PUBLISHes came ([MQTT-4.6.0-2]).
type ackQueue struct {
	v5   bool
	send func(p []byte) // writes MQTT bytes to the connection
	// refuse ends a 3.1.1 connection whose message could not be stored
	// (3.1.1 has no negative PUBACK); it runs once.
	refuse func()

	mu      sync.Mutex
	held    []*heldAck // in PUBLISH order
	room    chan struct{}
	refused bool
}

// heldAck is one PUBLISH waiting for its PUBACK to go out.
type heldAck struct {
	id     uint16
	packet []byte // mochi's PUBACK once it has written it
	stored bool   // storage has answered
	err    error  // storage's answer
}

func newAckQueue(v5 bool, send func([]byte), refuse func()) *ackQueue {
	return &ackQueue{v5: v5, send: send, refuse: refuse}
}

// hold registers the PUBLISH with packet id, whose PUBACK mochi is about to
// write, waiting first (at most wait) while the connection has maxHeldAcks
// waiting.
func (q *ackQueue) hold(id uint16, wait time.Duration) (*heldAck, error) {
	q.mu.Lock()
	var timeout <-chan time.Time // made only if it has to wait
	for len(q.held) >= maxHeldAcks {
		if q.room == nil {
			q.room = make(chan struct{})
		}
		room := q.room
		q.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-room:
		case <-timeout:
			return nil, errAckTimeout
		}
		q.mu.Lock()
	}
	a := &heldAck{id: id}
	q.held = append(q.held, a)
	q.mu.Unlock()
	return a, nil
}

// stored records storage's answer for a and lets out what may go.
func (q *ackQueue) stored(a *heldAck, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	a.stored, a.err = true, err
	q.releaseLocked()
}

// capture takes the held PUBACKs out of p (whole MQTT packets, as mochi
// writes them) and returns the rest, which is written as usual.
func (q *ackQueue) capture(p []byte) []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.held) == 0 {
		return p
	}
	var rest []byte // nil until a PUBACK is taken out
	for off := 0; off < len(p); {
		n := packetLen(p[off:])
		if n == 0 || off+n > len(p) {
			if rest != nil {
				rest = append(rest, p[off:]...) // not whole packets: leave alone
			}
			break
		}
		pk := p[off : off+n]
		if pk[0] == packets.Puback<<4 && n >= 4 && q.takeLocked(pk) {
			if rest == nil {
				rest = append(make([]byte, 0, len(p)), p[:off]...)
			}
		} else if rest != nil {
			rest = append(rest, pk...)
		}
		off += n
	}
	if rest == nil {
		return p
	}
	q.releaseLocked()
	return rest
}

// takeLocked keeps pk (a PUBACK) for the first held PUBLISH with its id
// that has none yet.
func (q *ackQueue) takeLocked(pk []byte) bool {
	id := uint16(pk[2])<<8 | uint16(pk[3])
	for _, a := range q.held {
		if a.packet == nil && a.id == id {
			a.packet = append([]byte(nil), pk...)
			return true
		}
	}
	return false
}

// releaseLocked sends the PUBACKs at the head of the queue whose messages
// are stored, in order. A message storage refused is answered PUBACK 0x97
// (MQTT 5), or ends the connection (3.1.1).
func (q *ackQueue) releaseLocked() {
	n := 0
	for _, a := range q.held {
		if a.packet == nil || !a.stored {
			break
		}
		n++
		switch {
		case q.refused:
		case a.err == nil:
			q.send(a.packet)
		case q.v5:
			q.send(refusedPuback(a.id))
		default:
			q.refused = true
			q.refuse()
		}
	}
	if n == 0 {
		return
	}
	clear(q.held[:n])
	q.held = q.held[n:]
	if q.room != nil && len(q.held) < maxHeldAcks {
		close(q.room)
		q.room = nil
	}
}

// refusedPuback is an MQTT 5 PUBACK with reason 0x97 (quota exceeded: try
// later), what the broker answers when storage cannot keep a message.
func refusedPuback(id uint16) []byte {
	return []byte{packets.Puback << 4, 3, byte(id >> 8), byte(id), packets.ErrQuotaExceeded.Code}
}

// packetLen is the length of the MQTT packet p starts with (fixed header
// included), or 0 if p does not hold a whole fixed header.
func packetLen(p []byte) int {
	size, mul := 0, 1
	for i := 1; i < len(p) && i <= 4; i++ {
		size += int(p[i]&0x7f) * mul
		if p[i]&0x80 == 0 {
			return 1 + i + size
		}
		mul *= 128
	}
	return 0
}
