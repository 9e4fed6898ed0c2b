package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/tenant"
)

const (
	demoKey    = "demo-api-key-0123456789"
	otherKey   = "other-api-key-0123456789"
	demoOrigin = "https://demo.example"
)

func testRegistry(t testing.TB) *tenant.Registry {
	t.Helper()
	r, err := tenant.NewRegistry([]tenant.App{
		{ID: "demo", APIKey: demoKey, Secret: strings.Repeat("d", 32), Origins: []string{demoOrigin}},
		{ID: "other", APIKey: otherKey, Secret: strings.Repeat("o", 32), Origins: []string{"https://other.example"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testBroker is a running Broker with a WebSocket endpoint and a TCP
// listener on loopback.
type testBroker struct {
	*Broker
	wsURL string
	stop  func() time.Duration // stops Run, returns how long shutdown took
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startBroker(t testing.TB, cfg Config) *testBroker {
	t.Helper()
	if cfg.Registry == nil {
		cfg.Registry = testRegistry(t)
	}
	if cfg.TCPAddr == "" {
		cfg.TCPAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.ConnectRatePerIP == 0 {
		cfg.ConnectRatePerIP = -1
	}
	if cfg.WebSocketIO == "" {
		// make test runs this package a second time with "goroutine", so
		// every transport test covers both read models.
		cfg.WebSocketIO = os.Getenv("HERALD_TEST_WEBSOCKET_IO")
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	testkit.WaitFor(t, 10*time.Second, "broker ready", b.Ready)
	hs := httptest.NewServer(b.WebSocketHandler())
	var once sync.Once
	var took time.Duration
	stop := func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("Run did not return within 15 s of cancel")
			}
			took = time.Since(start)
			hs.Close()
		})
		return took
	}
	t.Cleanup(func() { stop() })
	return &testBroker{Broker: b, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http"), stop: stop}
}

// dialWS opens a WebSocket to the broker and returns it as a net.Conn.
func dialWS(t *testing.T, tb *testBroker, origin string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	ws, _, err := websocket.Dial(ctx, tb.wsURL, &websocket.DialOptions{Subprotocols: []string{"mqtt"}, HTTPHeader: h})
	if err != nil {
		t.Fatalf("dial %s: %v", tb.wsURL, err)
	}
	ws.SetReadLimit(1 << 20)
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

func dialTCP(t testing.TB, tb *testBroker) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", tb.TCPAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// mqttClient is a paho MQTT 5 client with its received messages.
type mqttClient struct {
	*paho.Client
	msgs       chan *paho.Publish
	disconnect chan *paho.Disconnect
}

type connectOpt func(*paho.Connect)

func withWill(name string) connectOpt {
	return func(c *paho.Connect) {
		c.WillMessage = &paho.WillMessage{Topic: name, Payload: []byte("gone"), QoS: 0}
	}
}

func withSession(expiry uint32) connectOpt {
	return func(c *paho.Connect) {
		c.CleanStart = false
		c.Properties = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
	}
}

// connect runs an MQTT 5 CONNECT over nc; on refusal it returns the
// CONNACK (if any) and an error.
func connect(t *testing.T, nc net.Conn, clientID, user, pass string, opts ...connectOpt) (*mqttClient, *paho.Connack, error) {
	t.Helper()
	mc := &mqttClient{msgs: make(chan *paho.Publish, 1024), disconnect: make(chan *paho.Disconnect, 1)}
	mc.Client = paho.NewClient(paho.ClientConfig{
		// paho writes one packet in several Writes and pings concurrently.
		Conn: packets.NewThreadSafeConn(nc),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(p paho.PublishReceived) (bool, error) {
			mc.msgs <- p.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) { mc.disconnect <- d },
	})
	cp := &paho.Connect{
		ClientID: clientID, KeepAlive: 60, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte(pass), PasswordFlag: true,
	}
	for _, o := range opts {
		o(cp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := mc.Connect(ctx, cp)
	if err == nil {
		t.Cleanup(func() { _ = mc.Disconnect(&paho.Disconnect{}) })
	}
	return mc, ca, err
}

// mustConnect connects or fails the test.
func mustConnect(t *testing.T, nc net.Conn, clientID, user, pass string, opts ...connectOpt) *mqttClient {
	t.Helper()
	mc, ca, err := connect(t, nc, clientID, user, pass, opts...)
	if err != nil {
		code := -1
		if ca != nil {
			code = int(ca.ReasonCode)
		}
		t.Fatalf("connect %q: %v (reason %#x)", clientID, err, code)
	}
	return mc
}

func (mc *mqttClient) subscribe(t *testing.T, filters ...string) []byte {
	t.Helper()
	s := &paho.Subscribe{}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := mc.Subscribe(ctx, s)
	if sa == nil {
		t.Fatalf("subscribe %v: %v", filters, err)
	}
	return sa.Reasons
}

// next returns the next message or fails after d.
func (mc *mqttClient) next(t *testing.T, d time.Duration) *paho.Publish {
	t.Helper()
	select {
	case m := <-mc.msgs:
		return m
	case <-time.After(d):
		t.Fatal("no message received")
		return nil
	}
}

// none checks that no message arrives within d.
func (mc *mqttClient) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-mc.msgs:
		t.Fatalf("unexpected message on %q: %s", m.Topic, m.Payload)
	case <-time.After(d):
	}
}

func mint(t testing.TB, tb *testBroker, app string) tenant.Session {
	t.Helper()
	s, err := tb.cfg.Registry.Mint(app, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// --- raw MQTT for 3.1.1 and malformed input (paho.golang speaks only v5) ---

func mqttString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func remLen(n int) []byte {
	var out []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			return out
		}
	}
}

func packet(typ byte, body []byte) []byte {
	return append(append([]byte{typ}, remLen(len(body))...), body...)
}

// rawConnect builds a CONNECT for protocol level version (4 or 5) with a
// 60 s keep-alive.
func rawConnect(version byte, clientID, user, pass string, clean bool) []byte {
	return rawConnectKA(version, clientID, user, pass, clean, 60)
}

func rawConnectKA(version byte, clientID, user, pass string, clean bool, keepAlive uint16) []byte {
	body := mqttString(nil, "MQTT")
	flags := byte(0xC0)
	if clean {
		flags |= 0x02
	}
	body = append(body, version, flags)
	body = binary.BigEndian.AppendUint16(body, keepAlive)
	if version == 5 {
		body = append(body, 0) // no properties
	}
	body = mqttString(body, clientID)
	body = mqttString(body, user)
	body = mqttString(body, pass)
	return packet(0x10, body)
}

func rawSubscribe(version byte, id uint16, filters ...string) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	if version == 5 {
		body = append(body, 0)
	}
	for _, f := range filters {
		body = mqttString(body, f)
		body = append(body, 1)
	}
	return packet(0x82, body)
}

// readPacket reads one MQTT packet: its first byte and its body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	h, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(c&0x7f) * mult
		mult *= 128
		if c&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("bad remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return h, body, nil
}

// rawSession is a hand-driven MQTT connection.
type rawSession struct {
	c net.Conn
	r *bufio.Reader
}

func newRaw(c net.Conn) *rawSession { return &rawSession{c: c, r: bufio.NewReader(c)} }

func (s *rawSession) send(t testing.TB, p []byte) {
	t.Helper()
	_ = s.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.c.Write(p); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func (s *rawSession) read(t testing.TB) (byte, []byte) {
	t.Helper()
	_ = s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, body, err := readPacket(s.r)
	if err != nil {
		t.Fatalf("read packet: %v", err)
	}
	return h, body
}

// closed reports whether the server has closed the connection (reading
// gives EOF or a reset, not a timeout), after draining any packets.
func (s *rawSession) closed(d time.Duration) error {
	_ = s.c.SetReadDeadline(time.Now().Add(d))
	for {
		_, _, err := readPacket(s.r)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("connection still open after %v", d)
		}
		return nil
	}
}

// testLogger logs through t when BROKER_TEST_LOG is set, else nowhere.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("BROKER_TEST_LOG") == "" {
		return quietLogger()
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
