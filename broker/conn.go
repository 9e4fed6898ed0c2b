package broker

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// errMalformedLength is returned for a remaining-length field longer than
// the four bytes MQTT allows.
var errMalformedLength = errors.New("mqtt: malformed remaining length")

// conn is every client connection as mochi sees it, on either transport.
// It watches the MQTT framing of the inbound byte stream so an oversize
// packet is refused from its fixed header, before its body is read, and an
// MQTT 5 client is told why (DISCONNECT 0x95): mochi drops such a client
// silently.
type conn struct {
	net.Conn
	origin string // WebSocket Origin header; "" for TCP and non-browser clients

	connected atomic.Bool // CONNECT accepted
	refused   atomic.Bool // CONNECT refused (already logged)

	// A browser's token expiry (unix ns; zero for services), its place in
	// the broker's expiries (guarded by their lock) and its mochi client,
	// set once the session is established (session.go).
	expiresAt atomic.Int64
	expIdx    int
	client    *mqtt.Client

	// Direct delivery (direct.go): a browser's channel-wide filter, its
	// Receive Maximum (0: none announced) and the QoS 1 messages held back
	// by it, oldest first.
	chanFilter string
	window     int
	heldMu     sync.Mutex
	held       []uint16

	acks atomic.Pointer[ackQueue] // a publishing client's PUBACKs waiting for storage

	fr        framer  // touched only by the reading goroutine
	out       *outbox // every write, in order
	frameFn   func(dst, p []byte) []byte
	closeFn   func() error // how to end this transport
	closeOnce sync.Once
	closeErr  error
}

// framedTransport is a transport with its own outbox and framing (a
// WebSocket read by a poller).
type framedTransport interface {
	outbox() *outbox
	appendFrame(dst, p []byte) []byte
}

// newConn wraps a client's transport. closeFn ends it; nil means: write
// what is queued (in the background, bounded by WriteTimeout), then close.
func (b *Broker) newConn(nc net.Conn, origin string, closeFn func(c *conn) error) *conn {
	c := &conn{Conn: nc, origin: origin, fr: framer{max: b.cfg.MaxPacketSize}}
	if closeFn == nil {
		closeFn = func(c *conn) error { return b.closeFlushing(c.out, nc) }
	}
	c.closeFn = func() error { return closeFn(c) }
	if ft, ok := nc.(framedTransport); ok {
		c.out, c.frameFn = ft.outbox(), ft.appendFrame
	} else {
		c.out = newOutbox(newFDSink(nc), b.cfg.MaxQueued, b.cfg.WriteTimeout, b.goBackground, func() { _ = c.Close() })
		c.frameFn = func(dst, p []byte) []byte { return append(dst, p...) }
	}
	// A client gets ConnectTimeout to send CONNECT; mochi then moves the
	// deadline along with the keep-alive.
	_ = nc.SetDeadline(time.Now().Add(b.cfg.ConnectTimeout))
	return c
}

// holdOrSend decides, against cl's Receive Maximum, whether the QoS 1
// message id (already in cl's session) may be written now; if not it is
// held until an acknowledgement makes room (nextHeld). Held messages keep
// their order: nothing overtakes them.
func (c *conn) holdOrSend(cl *mqtt.Client, id uint16) (send bool) {
	if c.window == 0 {
		return true
	}
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	if len(c.held) == 0 && cl.State.Inflight.Len() <= c.window {
		return true
	}
	c.held = append(c.held, id)
	return false
}

// nextHeld takes the oldest held message, if any.
func (c *conn) nextHeld() (uint16, bool) {
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	if len(c.held) == 0 {
		return 0, false
	}
	id := c.held[0]
	c.held = c.held[1:]
	if len(c.held) == 0 {
		c.held = nil
	}
	return id, true
}

// Read passes bytes through, failing the connection at the first packet
// whose fixed header announces more than the maximum size.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if ferr := c.fr.feed(p[:n]); ferr != nil {
			if errors.Is(ferr, packets.ErrPacketTooLarge) && c.fr.version == 5 {
				// DISCONNECT, reason 0x95, empty properties.
				_, _ = c.Write([]byte{0xE0, 0x02, 0x95, 0x00})
			}
			return 0, ferr
		}
	}
	return n, err
}

// Write queues p (one MQTT packet from mochi) behind everything written
// before, and writes it now if the socket takes it. Errors come from a
// connection that already failed or closed: a write that cannot complete
// within WriteTimeout ends the connection.
func (c *conn) Write(p []byte) (int, error) {
	n := len(p)
	if q := c.acks.Load(); q != nil {
		// PUBACKs waiting for storage are taken out (acks.go).
		if p = q.capture(p); len(p) == 0 {
			return n, nil
		}
	}
	if _, err := sendFramed(c.out, c.frameFn, p); err != nil {
		return 0, err
	}
	return n, nil
}

// sendFramed queues p, framed by frame, on out: the Write of a transport.
func sendFramed(out *outbox, frame func(dst, p []byte) []byte, p []byte) (int, error) {
	bf := getBuf()
	bf.b = frame(bf.b, p)
	err := out.send(bf.b, false)
	putBuf(bf)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends the transport once.
func (c *conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.closeFn() })
	return c.closeErr
}

// closeFlushing ends a transport without a goodbye of its own: what is
// queued goes out first, in the background and within WriteTimeout (the
// caller may be any goroutine that noticed the end), then the socket
// closes.
func (b *Broker) closeFlushing(out *outbox, nc io.Closer) error {
	if out.idle() {
		out.close()
		return nc.Close()
	}
	b.goBackground(func() {
		_ = out.finish(nil, time.Now().Add(b.cfg.WriteTimeout))
		_ = nc.Close()
	})
	return nil
}

// framer follows MQTT packet boundaries in a byte stream without buffering:
// fixed header byte, remaining length (1–4 bytes), body. From the first
// packet (CONNECT) it keeps the protocol level.
type framer struct {
	max     int
	state   uint8 // 0 header, 1 length, 2 body
	remLen  int
	mult    int
	nLen    int
	left    int
	packets int
	head    [10]byte // start of the first packet's body
	nHead   int
	version byte
}

func (f *framer) feed(p []byte) error {
	for len(p) > 0 {
		switch f.state {
		case 0:
			f.state, f.remLen, f.mult, f.nLen = 1, 0, 1, 0
			p = p[1:]
		case 1:
			c := p[0]
			p = p[1:]
			f.remLen += int(c&0x7f) * f.mult
			f.mult *= 128
			f.nLen++
			if c&0x80 != 0 {
				if f.nLen == 4 {
					return errMalformedLength
				}
				continue
			}
			if f.max > 0 && 1+f.nLen+f.remLen > f.max {
				return packets.ErrPacketTooLarge
			}
			f.left = f.remLen
			f.state = 2
			if f.left == 0 {
				f.endPacket()
			}
		case 2:
			k := min(f.left, len(p))
			if f.packets == 0 && f.nHead < len(f.head) {
				f.nHead += copy(f.head[f.nHead:], p[:k])
			}
			p = p[k:]
			f.left -= k
			if f.left == 0 {
				f.endPacket()
			}
		}
	}
	return nil
}

func (f *framer) endPacket() {
	if f.packets == 0 {
		// CONNECT body: protocol name (2-byte length + name), then level.
		if f.nHead >= 2 {
			i := 2 + (int(f.head[0])<<8 | int(f.head[1]))
			if i < f.nHead {
				f.version = f.head[i]
			}
		}
	}
	f.packets++
	f.state = 0
}
