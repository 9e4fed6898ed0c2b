//go:build linux

package broker

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// wsInboundMax is how much decoded MQTT input one connection may hold
// unread before its socket is disarmed; reading resumes once mochi has
// taken it all. A browser sends a few bytes a minute; a service
// connection publishing hard is held to what its reader keeps up with.
const wsInboundMax = 256 << 10

// wsKeepBuffer is the inbound buffer size from which a drained connection
// keeps its buffer for the next read instead of releasing it.
const wsKeepBuffer = 16 << 10

// wsConn is a server-side WebSocket carrying MQTT, read by a poller instead
// of a goroutine of its own. To mochi it is a net.Conn: Read hands over the
// decoded byte stream (waiting on a condition variable, a shallow park
// whose stack the runtime can shrink), Write sends one binary frame per
// call through the connection's outbox (which all writes share, so frames
// never interleave).
type wsConn struct {
	tcp   *net.TCPConn
	rc    syscall.RawConn
	p     *poller
	id    uint64
	spawn func(func()) // runs a short write (pong) off the poller goroutine
	m     *metrics
	out   *outbox

	fr wsReader // used by the poller goroutine only (and before add)

	mu        sync.Mutex
	cond      sync.Cond
	in        []byte // decoded MQTT bytes; in[rpos:] not yet read
	rpos      int
	rerr      error // why the stream ended, once it has
	paused    bool  // disarmed because in is full
	detached  bool  // no longer registered with the poller
	rdl       time.Time
	timer     *time.Timer
	closeCode uint16 // status of our close frame; 0 means normal

	closeOnce sync.Once
}

// wsOptions are the limits of a polled WebSocket.
type wsOptions struct {
	maxMessage   int64         // inbound message limit
	maxQueued    int           // deliveries that may wait to be written
	writeTimeout time.Duration // longest wait for the socket to take a write
	spawn        func(func())  // runs work off the poller goroutine
	metrics      *metrics
}

// newWSConn registers an upgraded connection with p. early holds bytes the
// HTTP server read past the upgrade request: the start of the WebSocket
// stream.
func newWSConn(p *poller, tcp *net.TCPConn, early []byte, o wsOptions) (*wsConn, error) {
	rc, err := tcp.SyscallConn()
	if err != nil {
		return nil, err
	}
	if o.spawn == nil {
		o.spawn = func(f func()) { go f() }
	}
	c := &wsConn{tcp: tcp, rc: rc, p: p, spawn: o.spawn, m: o.metrics, fr: wsReader{max: o.maxMessage}}
	c.out = newOutbox(newFDSink(tcp), o.maxQueued, o.writeTimeout, o.spawn, func() { _ = c.Close() })
	c.cond.L = &c.mu
	if len(early) > 0 {
		c.mu.Lock()
		c.consumeLocked(early)
		c.mu.Unlock()
	}
	if err := p.add(c); err != nil {
		return nil, err
	}
	return c, nil
}

// readable is called by the poller when the socket has something: data,
// end of stream or an error.
func (c *wsConn) readable(buf []byte) {
	n, err := c.readOnce(buf)
	if errors.Is(err, syscall.EAGAIN) { // a spurious wake-up
		c.mu.Lock()
		c.rearmLocked()
		c.mu.Unlock()
		return
	}
	if n == 0 && err == nil {
		err = io.EOF
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > 0 && c.rerr == nil {
		c.consumeLocked(buf[:n])
	}
	if err != nil {
		c.failLocked(err)
	}
	if c.rerr != nil {
		return // ended: a read error, end of stream, a bad or a close frame
	}
	if len(c.in)-c.rpos >= wsInboundMax {
		c.paused = true
		c.m.wsReadPaused.Inc()
		return
	}
	c.rearmLocked()
}

// consumeLocked decodes bytes read from the socket into c.in and wakes the
// reader; a bad frame ends the stream. c.mu is held.
func (c *wsConn) consumeLocked(p []byte) {
	if c.rpos > 0 { // drop what mochi has read before appending more
		c.in = c.in[:copy(c.in, c.in[c.rpos:])]
		c.rpos = 0
	}
	if err := c.fr.feed(p, c); err != nil {
		c.failLocked(err)
		return
	}
	c.cond.Broadcast()
}

// data is the wsFrameSink side of the reader; c.mu is held.
func (c *wsConn) data(p []byte) { c.in = append(c.in, p...) }

// control answers control frames; c.mu is held.
func (c *wsConn) control(op byte, payload []byte) {
	switch op {
	case wsOpPing:
		// Sent off the poller goroutine: a failing write closes the
		// connection, which takes c.mu (held here).
		pong := appendWSHeader(nil, wsOpPong, len(payload))
		pong = append(pong, payload...)
		c.spawn(func() { _ = c.out.send(pong, false) })
	case wsOpClose:
		// Echo the peer's status in our close frame [RFC 6455 §5.5.1];
		// without one, closeGracefully sends 1000.
		if len(payload) >= 2 {
			c.closeCode = uint16(payload[0])<<8 | uint16(payload[1])
		}
		if c.rerr == nil {
			c.rerr = io.EOF
		}
		c.cond.Broadcast()
	}
}

// failLocked ends the inbound stream with err (the first cause wins); a
// protocol error picks the status of our close frame.
func (c *wsConn) failLocked(err error) {
	if c.rerr == nil {
		c.rerr = err
	}
	var pe *wsProtocolError
	if errors.As(err, &pe) && c.closeCode == 0 {
		c.closeCode = pe.Code
		c.m.wsProtocolErrors.WithLabelValues(strconv.Itoa(int(pe.Code))).Inc()
	}
	c.cond.Broadcast()
}

// endStream ends the inbound stream from outside the poller.
func (c *wsConn) endStream(err error) {
	c.mu.Lock()
	c.failLocked(err)
	c.mu.Unlock()
}

func (c *wsConn) rearmLocked() {
	if c.detached {
		return
	}
	if err := c.ctl(syscall.EPOLL_CTL_MOD); err != nil {
		c.failLocked(err)
	}
}

// Read returns decoded MQTT bytes, waiting for the poller to deliver some.
func (c *wsConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.in) == c.rpos {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if !c.rdl.IsZero() && !time.Now().Before(c.rdl) {
			return 0, os.ErrDeadlineExceeded
		}
		c.cond.Wait()
	}
	n := copy(p, c.in[c.rpos:])
	c.rpos += n
	if c.rpos == len(c.in) {
		// A busy connection (a service publishing) keeps its buffer; one
		// that only ever gets a few bytes (a browser) keeps none.
		c.rpos = 0
		if cap(c.in) >= wsKeepBuffer {
			c.in = c.in[:0]
		} else {
			c.in = nil
		}
		if c.paused {
			c.paused = false
			c.rearmLocked()
		}
	}
	return n, nil
}

// Write sends p as one binary frame, behind everything sent before.
func (c *wsConn) Write(p []byte) (int, error) { return sendFramed(c.out, c.appendFrame, p) }

// appendFrame appends p as one binary frame.
func (c *wsConn) appendFrame(dst, p []byte) []byte {
	return append(appendWSHeader(dst, wsOpBinary, len(p)), p...)
}

// outbox is where every write to this connection goes.
func (c *wsConn) outbox() *outbox { return c.out }

// detach stops reading: the poller forgets the socket and a waiting Read
// returns.
func (c *wsConn) detach() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.detached {
		return
	}
	c.detached = true
	_ = c.ctl(syscall.EPOLL_CTL_DEL)
	c.p.remove(c)
	if c.rerr == nil {
		c.rerr = net.ErrClosed
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.cond.Broadcast()
}

// Close drops the connection at once.
func (c *wsConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.detach()
		c.out.close()
		err = c.tcp.Close()
	})
	return err
}

// closeGracefully ends the connection with a close handshake: our close
// frame, then the peer's answer or end of stream (bounded, and cut short
// by ctx), then the socket. Dropping the socket right after the last MQTT
// packet could make the peer's close frame hit a closed socket, whose
// reset may destroy that packet before the client reads it.
func (c *wsConn) closeGracefully(ctx context.Context) {
	c.detach()
	c.mu.Lock()
	code := c.closeCode
	c.mu.Unlock()
	if code == 0 {
		code = wsCloseNormal
	}
	closing := wsClosePayload(code)
	frame := append(appendWSHeader(nil, wsOpClose, len(closing)), closing...)
	// What is queued goes first, then the close frame; nothing after it.
	if c.out.finish(frame, time.Now().Add(2*time.Second)) == nil {
		_ = c.tcp.CloseWrite()
		_ = c.tcp.SetReadDeadline(time.Now().Add(5 * time.Second))
		stop := context.AfterFunc(ctx, func() { _ = c.tcp.SetReadDeadline(time.Now()) })
		_, _ = io.Copy(io.Discard, io.LimitReader(c.tcp, 1<<20))
		stop()
	}
	_ = c.Close()
}

// LocalAddr is the server's address.
func (c *wsConn) LocalAddr() net.Addr { return c.tcp.LocalAddr() }

// RemoteAddr is the client's address.
func (c *wsConn) RemoteAddr() net.Addr { return c.tcp.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *wsConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.tcp.SetWriteDeadline(t)
}

// SetWriteDeadline bounds frame writes.
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.tcp.SetWriteDeadline(t) }

// SetReadDeadline bounds Read; a timer wakes a waiting Read when it passes.
func (c *wsConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl = t
	if t.IsZero() {
		if c.timer != nil {
			c.timer.Stop()
		}
		return nil
	}
	d := time.Until(t)
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.wakeReader)
	} else {
		c.timer.Reset(d)
	}
	return nil
}

func (c *wsConn) wakeReader() {
	c.mu.Lock()
	c.cond.Broadcast()
	c.mu.Unlock()
}

var _ net.Conn = (*wsConn)(nil)
