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

	ws, err := websocket.Accept(smallBuffers{w}, r, &websocket.AcceptOptions{
		Subprotocols:       []string{"mqtt"},
		InsecureSkipVerify: true, // origin checked above against the registry
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		// Accept has written the HTTP error.
		b.log.Debug("mqtt websocket upgrade failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	// NetConn lifts the read limit; MQTT packets have their own.
	// Not bound to a context: a parent context would keep two children per
	// connection. Shutdown closes connections itself (closeLive).
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	ws.SetReadLimit(int64(b.cfg.MaxPacketSize) + wsSlack)

	c := b.newConn(nc, origin, func() error { return b.closeWebSocket(ws, nc) })
	if !b.startConn(c) {
		_ = ws.CloseNow()
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
func (b *Broker) closeWebSocket(ws *websocket.Conn, nc net.Conn) error {
	b.mu.Lock()
	b.bg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.bg.Done()
		_ = ws.Close(websocket.StatusNormalClosure, "")
		_ = nc.Close() // releases NetConn's timers and contexts
	}()
	return nil
}

func (b *Broker) refuseTransport(w http.ResponseWriter, r *http.Request, status int, reason, msg string) {
	b.metrics.transportRejected.WithLabelValues(reason).Inc()
	b.log.Info("mqtt connection refused", "transport", listenerWS, "remote", r.RemoteAddr,
		"origin", r.Header.Get("Origin"), "status", status, "reason", msg)
	http.Error(w, msg, status)
}

// smallBuffers swaps the buffers net/http hands over on Hijack for smaller
// ones (keeping any bytes already read), so an idle WebSocket does not pin
// 8 KiB.
type smallBuffers struct{ http.ResponseWriter }

func (s smallBuffers) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack: %w", err)
	}
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			_ = c.Close()
			return nil, nil, fmt.Errorf("hijack flush: %w", err)
		}
	}
	// Bytes net/http already read past the request must stay buffered in
	// the new reader: coder/websocket re-wraps the reader around the bare
	// connection, keeping only what is buffered.
	n := brw.Reader.Buffered()
	if n == 0 {
		return c, bufio.NewReadWriter(bufio.NewReaderSize(c, wsBufferSize), bufio.NewWriterSize(c, wsWriteBufferSize)), nil
	}
	early, _ := brw.Reader.Peek(n)
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), c), max(wsBufferSize, n))
	if _, err := br.Peek(n); err != nil {
		_ = c.Close()
		return nil, nil, fmt.Errorf("hijack rebuffer: %w", err)
	}
	return c, bufio.NewReadWriter(br, bufio.NewWriterSize(c, wsWriteBufferSize)), nil
}
