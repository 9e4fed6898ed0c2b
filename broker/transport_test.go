package broker

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/topic"
)

// dialRawWS opens a WebSocket without an MQTT client on top.
func dialRawWS(t *testing.T, tb *testBroker) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, tb.wsURL, &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

// wsClosed reports whether the server ended the WebSocket.
func wsClosed(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("WebSocket still open")
			}
			return
		}
	}
}

// Malformed input ends only the connection that sent it.
func TestMalformedInputClosesOnlyThatConnection(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	watcher := mustConnect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token)
	watcher.subscribe(t, topic.ChannelFilter("demo", s.Channel))

	badLength := []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}
	truncatedName := []byte{0x10, 0x04, 0x00, 0x09, 'M', 'Q'}
	notConnect := rawSubscribe(5, 1, "#")
	tcpCases := map[string][]byte{
		"garbage":                  []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"bad remaining length":     badLength,
		"truncated protocol":       append(truncatedName, bytes.Repeat([]byte{0}, 10)...),
		"subscribe before connect": notConnect,
	}
	for name, in := range tcpCases {
		t.Run("tcp "+name, func(t *testing.T) {
			rs := newRaw(dialTCP(t, tb))
			rs.send(t, in)
			if err := rs.closed(5 * time.Second); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("ws "+name, func(t *testing.T) {
			ws := dialRawWS(t, tb)
			if err := ws.Write(context.Background(), websocket.MessageBinary, in); err != nil {
				t.Fatal(err)
			}
			wsClosed(t, ws)
		})
	}
	t.Run("ws text frame", func(t *testing.T) {
		ws := dialRawWS(t, tb)
		if err := ws.Write(context.Background(), websocket.MessageText, rawConnect(5, s.Channel, "demo", s.Token, true)); err != nil {
			t.Fatal(err)
		}
		wsClosed(t, ws)
	})
	t.Run("bad packet after connect", func(t *testing.T) {
		other := mint(t, tb, "demo")
		rs := newRaw(dialTCP(t, tb))
		rs.send(t, rawConnect(4, other.Channel, "demo", other.Token, true))
		if h, _ := rs.read(t); h != 0x20 {
			t.Fatalf("got %#x, want CONNACK", h)
		}
		rs.send(t, []byte{0xf0, 0x00}) // reserved packet type 15
		if err := rs.closed(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	})

	if err := tb.Publish(context.Background(), topic.Events("demo", s.Channel), []byte("still here"), PublishOptions{QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if m := watcher.next(t, 5*time.Second); string(m.Payload) != "still here" {
		t.Fatalf("got %q", m.Payload)
	}
}

// An oversize packet is refused from its header; an MQTT 5 client is told
// why with DISCONNECT 0x95.
func TestOversizePacketDisconnects(t *testing.T) {
	tb := startBroker(t, Config{MaxPacketSize: 4096})
	oversize := append([]byte{0x30}, remLen(5000)...)
	oversize = append(oversize, mqttString(nil, "apps/demo/x")...)
	for _, transport := range []string{"tcp", "ws"} {
		t.Run(transport, func(t *testing.T) {
			s := mint(t, tb, "demo")
			var nc net.Conn
			if transport == "tcp" {
				nc = dialTCP(t, tb)
			} else {
				nc = dialWS(t, tb, demoOrigin)
			}
			rs := newRaw(nc)
			rs.send(t, rawConnect(5, s.Channel, "demo", s.Token, true))
			h, body := rs.read(t)
			if h != 0x20 || body[1] != 0 {
				t.Fatalf("connect: %#x %x", h, body)
			}
			if !bytes.Contains(body, []byte{0x27, 0, 0, 0x10, 0}) {
				t.Errorf("CONNACK %x does not announce Maximum Packet Size 4096", body)
			}
			rs.send(t, oversize)
			h, body = rs.read(t)
			if h != 0xe0 || len(body) == 0 || body[0] != 0x95 {
				t.Fatalf("got %#x %x, want DISCONNECT 0x95", h, body)
			}
			if err := rs.closed(5 * time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A client that stops reading is dropped once its queue is full; the
// others keep receiving.
func TestSlowConsumerIsDisconnected(t *testing.T) {
	tb := startBroker(t, Config{MaxQueued: 4, Metrics: prometheus.NewRegistry()})
	slow := mint(t, tb, "demo")
	fast := mint(t, tb, "demo")
	nc := dialTCP(t, tb)
	_ = nc.(*net.TCPConn).SetReadBuffer(4096)
	rs := newRaw(nc)
	rs.send(t, rawConnect(5, slow.Channel, "demo", slow.Token, true))
	rs.read(t)
	rs.send(t, rawSubscribe(5, 1, topic.ChannelFilter("demo", slow.Channel)))
	rs.read(t)
	// From here on the slow client reads nothing.

	fc := mustConnect(t, dialWS(t, tb, demoOrigin), fast.Channel, "demo", fast.Token)
	fc.subscribe(t, topic.ChannelFilter("demo", fast.Channel))

	payload := bytes.Repeat([]byte("x"), 100<<10)
	ctx := context.Background()
	for i := 0; i < 500 && counterValue(t, tb.metrics.dropped.WithLabelValues("queue_full")) == 0; i++ {
		if err := tb.Publish(ctx, topic.Events("demo", slow.Channel), payload, PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if counterValue(t, tb.metrics.dropped.WithLabelValues("queue_full")) == 0 {
		t.Fatal("no message dropped for a client that reads nothing")
	}
	testkit.WaitFor(t, 10*time.Second, "slow client disconnected", func() bool { return tb.Clients() == 1 })
	if err := tb.Publish(ctx, topic.Events("demo", fast.Channel), []byte("hi"), PublishOptions{QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if m := fc.next(t, 5*time.Second); string(m.Payload) != "hi" {
		t.Fatalf("got %q", m.Payload)
	}
}

// Shutdown tells MQTT 5 clients why (0x8B) and finishes within 10 s.
func TestGracefulShutdownSendsServerShuttingDown(t *testing.T) {
	dir := t.TempDir()
	tb := startBroker(t, Config{DataDir: dir})
	var clients []*mqttClient
	for _, transport := range []string{"ws", "tcp"} {
		s := mint(t, tb, "demo")
		var nc net.Conn
		if transport == "ws" {
			nc = dialWS(t, tb, demoOrigin)
		} else {
			nc = dialTCP(t, tb)
		}
		mc := mustConnect(t, nc, s.Channel, "demo", s.Token, withSession(600))
		mc.subscribe(t, topic.ChannelFilter("demo", s.Channel))
		clients = append(clients, mc)
	}
	rs := newRaw(dialTCP(t, tb)) // a 3.1.1 client is just closed
	s := mint(t, tb, "demo")
	rs.send(t, rawConnect(4, s.Channel, "demo", s.Token, true))
	rs.read(t)
	silent := newRaw(dialTCP(t, tb)) // connected, never sent CONNECT

	if took := tb.stop(); took > 3*time.Second {
		t.Fatalf("shutdown took %v", took)
	}
	for i, mc := range clients {
		select {
		case d := <-mc.disconnect:
			if d.ReasonCode != 0x8b {
				t.Fatalf("client %d: DISCONNECT reason %#x, want 0x8b", i, d.ReasonCode)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("client %d: no DISCONNECT", i)
		}
	}
	for _, r := range []*rawSession{rs, silent} {
		if err := r.closed(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	tb := startBroker(t, Config{Metrics: reg})
	s := mint(t, tb, "demo")
	mustConnect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token)
	_, _, _ = connect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", "bad")
	got := map[string]float64{}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"herald_broker_connections":                             1,
		"herald_broker_connects_refused_total,reason=bad_token": 1,
		"herald_broker_auth_failures_total,kind=browser":        1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestMaxConnections(t *testing.T) {
	tb := startBroker(t, Config{MaxConnections: 1})
	s := mint(t, tb, "demo")
	mustConnect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, tb.wsURL, &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("WebSocket beyond the limit: %v %v, want 503", err, resp)
	}
	// TCP cannot be refused before CONNECT; the CONNACK says why.
	other := mint(t, tb, "demo")
	_, ca, err := connect(t, dialTCP(t, tb), other.Channel, "demo", other.Token)
	if err == nil || ca == nil || ca.ReasonCode != 0x89 {
		t.Fatalf("TCP beyond the limit: %v %+v, want CONNACK 0x89", err, ca)
	}
}

func TestKeepAliveBounds(t *testing.T) {
	tb := startBroker(t, Config{KeepAliveMin: time.Minute, KeepAliveMax: 20 * time.Minute})
	tests := []struct {
		name      string
		requested uint16
		announced uint16 // 0: no Server Keep Alive
	}{
		{"none requested", 0, 1200},
		{"above max", 3600, 1200},
		{"below min is tolerated silently", 10, 0},
		{"within bounds", 300, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mint(t, tb, "demo")
			_, ca, err := connect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token, func(c *paho.Connect) { c.KeepAlive = tt.requested })
			if err != nil {
				t.Fatal(err)
			}
			var got uint16
			if ca.Properties != nil && ca.Properties.ServerKeepAlive != nil {
				got = *ca.Properties.ServerKeepAlive
			}
			if got != tt.announced {
				t.Fatalf("Server Keep Alive = %d, want %d", got, tt.announced)
			}
		})
	}
}

// A connection that never sends CONNECT is closed after ConnectTimeout.
func TestConnectTimeout(t *testing.T) {
	tb := startBroker(t, Config{ConnectTimeout: 200 * time.Millisecond})
	if err := newRaw(dialTCP(t, tb)).closed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	wsClosed(t, dialRawWS(t, tb))
}
