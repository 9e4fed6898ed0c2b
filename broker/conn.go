package broker

import (
	"errors"
	"net"
	"os"
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

	fr        framer // touched only by the reading goroutine
	wtimeout  time.Duration
	closeFn   func() error // how to end this transport
	closeOnce sync.Once
	closeErr  error
}

func (b *Broker) newConn(nc net.Conn, origin string, closeFn func() error) *conn {
	if closeFn == nil {
		closeFn = nc.Close
	}
	c := &conn{Conn: nc, origin: origin, fr: framer{max: b.cfg.MaxPacketSize}, closeFn: closeFn, wtimeout: b.cfg.WriteTimeout}
	// A client gets ConnectTimeout to send CONNECT; mochi then moves the
	// deadline along with the keep-alive.
	_ = nc.SetDeadline(time.Now().Add(b.cfg.ConnectTimeout))
	return c
}

// Read passes bytes through, failing the connection at the first packet
// whose fixed header announces more than the maximum size.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if ferr := c.fr.feed(p[:n]); ferr != nil {
			if errors.Is(ferr, packets.ErrPacketTooLarge) && c.fr.version == 5 {
				// DISCONNECT, reason 0x95, empty properties.
				_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = c.Conn.Write([]byte{0xE0, 0x02, 0x95, 0x00})
			}
			return 0, ferr
		}
	}
	return n, err
}

// Write gives each write WriteTimeout; a write that times out ends the
// connection (part of a packet may have gone out).
func (c *conn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.wtimeout))
	n, err := c.Conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		_ = c.Close()
	}
	return n, err
}

// Close ends the transport once.
func (c *conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.closeFn() })
	return c.closeErr
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
