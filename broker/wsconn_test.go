//go:build linux

package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/topic"
)

// Both read models carry a browser session end to end.
func TestWebSocketIOModels(t *testing.T) {
	for _, io := range []string{WebSocketEpoll, WebSocketGoroutine} {
		t.Run(io, func(t *testing.T) {
			tb := startBroker(t, Config{WebSocketIO: io})
			s := mint(t, tb, "demo")
			mc := mustConnect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token)
			if got := mc.subscribe(t, topic.ChannelFilter("demo", s.Channel)); !bytes.Equal(got, []byte{1}) {
				t.Fatalf("SUBACK %v", got)
			}
			big := bytes.Repeat([]byte("x"), 70_000) // a frame with a 64-bit length, sent by writev
			for _, payload := range [][]byte{[]byte("hello"), big} {
				if err := tb.Publish(context.Background(), topic.Events("demo", s.Channel), payload, PublishOptions{QoS: 1}); err != nil {
					t.Fatal(err)
				}
				if m := mc.next(t, 5*time.Second); !bytes.Equal(m.Payload, payload) {
					t.Fatalf("got %d bytes, want %d", len(m.Payload), len(payload))
				}
			}
		})
	}
}

func TestNewRefusesUnknownWebSocketIO(t *testing.T) {
	_, err := New(Config{Registry: testRegistry(t), WebSocketIO: "threads"})
	if err == nil {
		t.Fatal("New accepted an unknown WebSocketIO")
	}
}

// rawWS is a hand-driven WebSocket client: frames are written byte for
// byte, so a test can send what a library would not.
type rawWS struct {
	nc net.Conn
	br *bufio.Reader
}

// dialRawFrames performs the opening handshake by hand; extra is written
// in the same segment as the request (a client that does not wait for the
// 101 before sending).
func dialRawFrames(t *testing.T, tb *testBroker, extra []byte) *rawWS {
	t.Helper()
	u, err := url.Parse(tb.wsURL)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	path := u.Path
	if path == "" {
		path = "/"
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	if _, err := nc.Write(append([]byte(req), extra...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		t.Fatalf("handshake status %d: %s", resp.StatusCode, body)
	}
	return &rawWS{nc: nc, br: br}
}

func (w *rawWS) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	if _, err := w.nc.Write(bytes.Join(frames, nil)); err != nil {
		t.Fatal(err)
	}
}

// frame reads one server frame, which must be unmasked and final.
func (w *rawWS) frame(t *testing.T) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	if h[0]&0xf0 != 0x80 || h[1]&0x80 != 0 {
		t.Fatalf("frame header %x: want FIN, no RSV, no mask", h)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		_, _ = io.ReadFull(w.br, l[:])
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, _ = io.ReadFull(w.br, l[:])
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(w.br, p); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	return h[0] & 0x0f, p
}

// eof waits for the server to close the TCP connection.
func (w *rawWS) eof(t *testing.T) {
	t.Helper()
	if _, err := io.Copy(io.Discard, w.br); err != nil {
		t.Fatalf("want a clean end of stream, got %v", err)
	}
}

// The polled transport speaks RFC 6455 itself after the handshake: early
// bytes, fragmented messages, ping, close and protocol errors.
func TestPolledWebSocketFrames(t *testing.T) {
	tb := startBroker(t, Config{WebSocketIO: WebSocketEpoll})

	t.Run("connect sent with the upgrade request, split over fragments", func(t *testing.T) {
		s := mint(t, tb, "demo")
		connect := rawConnect(5, s.Channel, "demo", s.Token, true)
		w := dialRawFrames(t, tb, clientFrame(false, wsOpBinary, connect[:5]))
		w.send(t, clientFrame(true, wsOpPing, []byte("are you there")), clientFrame(true, wsOpContinuation, connect[5:]))
		got := map[byte][]byte{}
		for range 2 {
			op, p := w.frame(t)
			got[op] = p
		}
		if string(got[wsOpPong]) != "are you there" {
			t.Errorf("pong payload %q", got[wsOpPong])
		}
		if c := got[wsOpBinary]; len(c) < 4 || c[0] != 0x20 || c[3] != 0 {
			t.Fatalf("want a successful CONNACK, got %x", c)
		}
		// A close from the client is echoed and the server ends the TCP
		// connection.
		w.send(t, clientFrame(true, wsOpClose, []byte{0x03, 0xe8}))
		op, p := w.frame(t)
		if op != wsOpClose || !bytes.Equal(p, []byte{0x03, 0xe8}) {
			t.Fatalf("got op %x %x, want close 1000", op, p)
		}
		w.eof(t)
	})

	for _, tt := range []struct {
		name  string
		frame []byte
		code  uint16
	}{
		{"text frame", clientFrame(true, wsOpText, []byte("hi")), wsCloseUnsupported},
		{"unmasked frame", []byte{0x82, 0x02, 0x10, 0x00}, wsCloseProtocol},
		{"message over the limit", clientFrame(true, wsOpBinary, make([]byte, DefaultMaxPacketSize+wsSlack+1)), wsCloseTooBig},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := dialRawFrames(t, tb, nil)
			before := counterValue(t, tb.metrics.wsProtocolErrors.WithLabelValues(strconv.Itoa(int(tt.code))))
			w.send(t, tt.frame)
			op, p := w.frame(t)
			if op != wsOpClose || len(p) < 2 || binary.BigEndian.Uint16(p) != tt.code {
				t.Fatalf("got op %x %x, want close %d", op, p, tt.code)
			}
			w.eof(t)
			if got := counterValue(t, tb.metrics.wsProtocolErrors.WithLabelValues(strconv.Itoa(int(tt.code)))); got != before+1 {
				t.Errorf("websocket_protocol_errors_total{code=%d} went %v → %v, want +1", tt.code, before, got)
			}
		})
	}
}

// polledPair returns a wsConn served by a running poller and the client
// end of its TCP connection.
func polledPair(t *testing.T) (*wsConn, net.Conn) {
	t.Helper()
	p, err := newPoller(quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.run(); close(done) }()
	t.Cleanup(func() { p.stop(); <-done })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	wc, err := newWSConn(p, server.(*net.TCPConn), nil, wsOptions{
		maxMessage: 1 << 30, maxQueued: 64, writeTimeout: 10 * time.Second, metrics: newMetrics(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wc.Close() })
	return wc, client
}

// A client sending far more than the inbound limit while nothing reads is
// held back by TCP (the socket is disarmed), and every byte still arrives
// in order once the reader catches up.
func TestPolledConnBackpressure(t *testing.T) {
	wc, client := polledPair(t)
	const total = 4 * wsInboundMax
	want := make([]byte, total)
	for i := range want {
		want[i] = byte(i * 7)
	}
	go func() {
		for off := 0; off < total; off += 1000 {
			if _, err := client.Write(clientFrame(true, wsOpBinary, want[off:min(off+1000, total)])); err != nil {
				return
			}
		}
	}()
	testkit.WaitFor(t, 10*time.Second, "reading paused", func() bool {
		wc.mu.Lock()
		defer wc.mu.Unlock()
		return wc.paused
	})
	wc.mu.Lock()
	held := len(wc.in) - wc.rpos
	wc.mu.Unlock()
	if held > wsInboundMax+pollerReadSize {
		t.Fatalf("holds %d unread bytes, limit %d (+ one read)", held, wsInboundMax)
	}
	if got := counterValue(t, wc.m.wsReadPaused); got < 1 {
		t.Errorf("websocket_read_paused_total = %v, want ≥ 1", got)
	}
	got := make([]byte, 0, total)
	buf := make([]byte, 300)
	_ = wc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(got) < total {
		n, err := wc.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes arrived out of order or changed")
	}
}

// A read deadline wakes a waiting Read with a timeout; a later deadline
// lets it wait for data again.
func TestPolledConnReadDeadline(t *testing.T) {
	wc, client := polledPair(t)
	_ = wc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := wc.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want a timeout", err)
	}
	_ = wc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Write(clientFrame(true, wsOpBinary, []byte("late"))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, err := wc.Read(buf)
	if err != nil || string(buf[:n]) != "late" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	// The peer going away ends the stream.
	_ = client.Close()
	if _, err := wc.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("after the peer closed: %v, want EOF", err)
	}
}
