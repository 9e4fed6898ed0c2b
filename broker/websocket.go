package broker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// wsSlack is how far one WebSocket message may exceed MaxPacketSize: the
// MQTT framing check refuses an oversize packet from its header (with
// DISCONNECT 0x95) before the WebSocket limit would cut the stream.
const wsSlack = 4 << 10

// wsBufferSize sizes the WebSocket layer's read buffer (frame headers and
// small frames; larger reads bypass it) and wsWriteBufferSize its write
// buffer (one small MQTT packet goes out in one write).
// net/http hands a hijacked connection 4 KiB + 4 KiB of buffers, which an
// idle connection would keep for its whole life; MQTT control packets are a
// few bytes and larger payloads pass the buffer by.
const (
	wsBufferSize      = 128
	wsWriteBufferSize = 512
)

// WebSocketHandler serves MQTT over WebSocket (GET /mqtt, subprotocol
// "mqtt", binary frames). It refuses before the upgrade: a browser Origin
// that no app allows (403, against cross-site WebSocket hijacking), a
// source IP over its connect rate (429), a full or stopping broker (503).
// Each accepted connection is then served on a goroutine owned by the
// Broker, so the handler returns right after the upgrade.
func (b *Broker) WebSocketHandler() http.Handler {
	return http.HandlerFunc(b.serveWebSocket)
}

func (b *Broker) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	origin := r.Header.Get("Origin")
	// coder/websocket's own check only knows same-host and glob patterns;
	// the apps' configured origins are the authority here. Which app the
	// client belongs to is only known at CONNECT, where the origin is
	// checked again against that app.
	if origin != "" && !b.cfg.Registry.OriginAllowed(origin) {
		b.refuseTransport(w, r, http.StatusForbidden, "origin", "origin not allowed")
		return
	}
	if !b.ready.Load() {
		b.refuseTransport(w, r, http.StatusServiceUnavailable, "not_ready", "broker not ready")
		return
	}
	if !b.limiter.allow(hostOf(r.RemoteAddr), time.Now()) {
		w.Header().Set("Retry-After", "1")
		b.refuseTransport(w, r, http.StatusTooManyRequests, "rate", "connect rate exceeded")
		return
	}
	if b.Clients() >= b.cfg.MaxConnections {
		b.refuseTransport(w, r, http.StatusServiceUnavailable, "capacity", "too many connections")
		return
	}

	hj := &hijacker{ResponseWriter: w, detach: len(b.pollers) > 0}
	ws, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		Subprotocols:       []string{"mqtt"},
		InsecureSkipVerify: true, // origin checked above against the registry
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		// Accept has written the HTTP error.
		b.log.Debug("mqtt websocket upgrade failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	if hj.tcp != nil {
		// coder/websocket did the opening handshake; a poller reads the
		// frames from here on.
		_ = ws.CloseNow() // closes only the detached stand-in
		b.servePolled(hj.tcp, hj.early, origin)
		return
	}
	// NetConn lifts the read limit; MQTT packets have their own.
	// Not bound to a context: a parent context would keep two children per
	// connection. Shutdown closes connections itself (closeLive).
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	ws.SetReadLimit(int64(b.cfg.MaxPacketSize) + wsSlack)

	c := b.newConn(nc, origin, func(c *conn) error { return b.closeWebSocket(ws, nc, c.out) })
	if !b.startConn(c) {
		_ = ws.CloseNow()
		return
	}
	go b.serve(listenerWS, c)
}

// servePolled hands an upgraded socket to one of the pollers and mochi.
func (b *Broker) servePolled(tcp *net.TCPConn, early []byte, origin string) {
	p := b.pollers[b.pollNext.Add(1)%uint64(len(b.pollers))]
	wc, err := newWSConn(p, tcp, early, wsOptions{
		maxMessage: int64(b.cfg.MaxPacketSize) + wsSlack, maxQueued: b.cfg.MaxQueued,
		writeTimeout: b.cfg.WriteTimeout, spawn: b.goBackground, metrics: b.metrics,
	})
	if err != nil {
		b.log.Warn("mqtt websocket not registered with the poller", "remote", tcp.RemoteAddr().String(), "error", err)
		_ = tcp.Close()
		return
	}
	c := b.newConn(wc, origin, func(*conn) error {
		b.goBackground(func() { wc.closeGracefully(b.ctx) })
		return nil
	})
	if !b.startConn(c) {
		_ = wc.Close()
		return
	}
	go b.serve(listenerWS, c)
}

// closeWebSocket ends a WebSocket with a close handshake, in the
// background: mochi closes connections from whatever goroutine noticed the
// end (another client's takeover, a publisher, shutdown) and must not wait
// for a peer. The handshake matters: closing the socket straight after the
// last MQTT packet (a refusing CONNACK, a DISCONNECT) can make the peer's
// close frame hit a closed socket, whose reset may destroy that packet
// before the client reads it. coder/websocket bounds the handshake (5 s
// write + 5 s wait); shutdown cuts it earlier through b.ctx.
func (b *Broker) closeWebSocket(ws *websocket.Conn, nc net.Conn, out *outbox) error {
	b.goBackground(func() {
		_ = out.finish(nil, time.Now().Add(b.cfg.WriteTimeout))
		_ = ws.Close(websocket.StatusNormalClosure, "")
		_ = nc.Close() // releases NetConn's timers and contexts
	})
	return nil
}

func (b *Broker) refuseTransport(w http.ResponseWriter, r *http.Request, status int, reason, msg string) {
	b.metrics.transportRejected.WithLabelValues(reason).Inc()
	b.log.Info("mqtt connection refused", "transport", listenerWS, "remote", r.RemoteAddr,
		"origin", r.Header.Get("Origin"), "status", status, "reason", msg)
	http.Error(w, msg, status)
}

// hijacker hands coder/websocket the upgraded connection. It swaps the
// buffers net/http hands over on Hijack for smaller ones (keeping any bytes
// already read), so an idle WebSocket does not pin 8 KiB. With detach set
// and a TCP socket underneath, it keeps the socket (and the bytes read past
// the request) for the poller and gives coder/websocket a stand-in that is
// never read or written: coder/websocket does only the opening handshake.
type hijacker struct {
	http.ResponseWriter
	detach bool

	tcp   *net.TCPConn // set when detached
	early []byte
}

func (h *hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack: %w", err)
	}
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			_ = c.Close()
			return nil, nil, fmt.Errorf("hijack flush: %w", err)
		}
	}
	n := brw.Reader.Buffered()
	var early []byte
	if n > 0 {
		p, _ := brw.Reader.Peek(n)
		early = bytes.Clone(p)
	}
	if tcp, ok := c.(*net.TCPConn); ok && h.detach {
		h.tcp, h.early = tcp, early
		stand := detachedConn{tcp.LocalAddr(), tcp.RemoteAddr()}
		return stand, bufio.NewReadWriter(bufio.NewReaderSize(stand, 16), bufio.NewWriterSize(stand, 16)), nil
	}
	// Bytes net/http already read past the request must stay buffered in
	// the new reader: coder/websocket re-wraps the reader around the bare
	// connection, keeping only what is buffered.
	if n == 0 {
		return c, bufio.NewReadWriter(bufio.NewReaderSize(c, wsBufferSize), bufio.NewWriterSize(c, wsWriteBufferSize)), nil
	}
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), c), max(wsBufferSize, n))
	if _, err := br.Peek(n); err != nil {
		_ = c.Close()
		return nil, nil, fmt.Errorf("hijack rebuffer: %w", err)
	}
	return c, bufio.NewReadWriter(br, bufio.NewWriterSize(c, wsWriteBufferSize)), nil
}

// detachedConn is what coder/websocket holds of a socket the poller took:
// it keeps the addresses and never touches the socket, so its Close (and
// the finalizer coder/websocket sets) cannot end the real connection.
type detachedConn struct{ local, remote net.Addr }

func (detachedConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (detachedConn) Write([]byte) (int, error)        { return 0, net.ErrClosed }
func (detachedConn) Close() error                     { return nil }
func (d detachedConn) LocalAddr() net.Addr            { return d.local }
func (d detachedConn) RemoteAddr() net.Addr           { return d.remote }
func (detachedConn) SetDeadline(time.Time) error      { return nil }
func (detachedConn) SetReadDeadline(time.Time) error  { return nil }
func (detachedConn) SetWriteDeadline(time.Time) error { return nil }
