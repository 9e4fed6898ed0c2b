package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/internal/testkit"
)

const testAPIKey = "test-demo-api-key-0123456789"

// testGateway is a `herald serve` started in-process by a test through run().
type testGateway struct {
	base     string // http://127.0.0.1:port
	dataDir  string
	localaws string // host:port of its embedded localaws
	stop     func() error

	mu   sync.Mutex
	logs [][]byte // every line it logged
}

// logged returns the lines the gateway logged so far that contain s.
func (g *testGateway) logged(s string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, l := range g.logs {
		if strings.Contains(string(l), s) {
			out = append(out, string(l))
		}
	}
	return out
}

// startGateway runs the real program with extra args on free loopback ports
// and waits for its ready line.
func startGateway(t *testing.T, dataDir string, extra ...string) *testGateway {
	t.Helper()
	return startGatewayEnv(t, dataDir, nil, extra...)
}

// startGatewayEnv is startGateway with more HERALD_* variables set.
func startGatewayEnv(t *testing.T, dataDir string, more map[string]string, extra ...string) *testGateway {
	t.Helper()
	env := map[string]string{
		"HERALD_DEMO_API_KEY":  testAPIKey,
		"HERALD_LOG_FORMAT":    "json",
		"HERALD_LOCALAWS_ADDR": testkit.FreeAddr(t),
	}
	for k, v := range more {
		env[k] = v
	}
	args := append([]string{"serve", "--http-addr", "127.0.0.1:0", "--data-dir", dataDir}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, pw, func(k string) string { return env[k] })
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	ready := make(chan string, 1)
	g := &testGateway{dataDir: dataDir, localaws: env["HERALD_LOCALAWS_ADDR"]}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			g.mu.Lock()
			g.logs = append(g.logs, bytes.Clone(line))
			g.mu.Unlock()
			if testing.Verbose() {
				t.Logf("gateway: %s", line)
			}
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "herald ready" {
				api, _ := rec["api"].(string)
				ready <- strings.TrimSuffix(api, "/v1/")
			}
		}
	}()
	var stopped bool
	g.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("gateway did not stop within 15s")
			return nil
		}
	}
	t.Cleanup(func() { _ = g.stop() })
	select {
	case g.base = <-ready:
	case err := <-done:
		t.Fatalf("gateway exited before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway not ready within 30s")
	}
	return g
}

type session struct {
	App      string `json:"app"`
	Channel  string `json:"channel"`
	ClientID string `json:"clientId"`
	Topic    string `json:"topic"`
	Token    string `json:"token"`
	MQTT     struct {
		URL             string `json:"url"`
		ProtocolVersion int    `json:"protocolVersion"`
	} `json:"mqtt"`
}

func postJSON(t testing.TB, url, bearer string, body any) (*http.Response, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func (g *testGateway) newSession(t *testing.T) session {
	t.Helper()
	resp, body := postJSON(t, g.base+"/v1/sessions", "", map[string]string{"app": "demo"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/sessions: got %d %s, want 201", resp.StatusCode, body)
	}
	var s session
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// mqttClient connects a real paho.golang MQTT 5 client over the gateway's
// WebSocket endpoint and collects what it receives.
type mqttClient struct {
	c    *paho.Client
	msgs chan *paho.Publish
	// disconnects carries the reason code of each DISCONNECT the server sends.
	disconnects chan byte
}

func dialMQTT(t testing.TB, wsURL string, connect *paho.Connect) (*mqttClient, *paho.Connack, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		return nil, nil, err
	}
	// paho writes one packet in several writes and pings concurrently; over a
	// WebSocket those writes must not interleave.
	conn := packets.NewThreadSafeConn(websocket.NetConn(context.Background(), ws, websocket.MessageBinary))
	mc := &mqttClient{msgs: make(chan *paho.Publish, 100), disconnects: make(chan byte, 1)}
	mc.c = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case mc.disconnects <- d.ReasonCode:
			default:
			}
		},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			mc.msgs <- pr.Packet
			return true, nil
		}},
	})
	ca, err := mc.c.Connect(ctx, connect)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() { _ = mc.c.Disconnect(&paho.Disconnect{}) })
	return mc, ca, nil
}

// subscribedBrowser connects a browser for session s (persistent session)
// and subscribes it to its channel at QoS 1.
func subscribedBrowser(t *testing.T, s session) *mqttClient {
	t.Helper()
	mc, _, err := dialMQTT(t, s.MQTT.URL, browserConnect(s, true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.Topic, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	return mc
}

func browserConnect(s session, cleanStart bool) *paho.Connect {
	return &paho.Connect{
		ClientID: s.ClientID, Username: s.App, UsernameFlag: true,
		Password: []byte(s.Token), PasswordFlag: true, KeepAlive: 60, CleanStart: cleanStart,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: ptr(uint32(3600))},
	}
}

func ptr[T any](v T) *T { return &v }

func (m *mqttClient) next(t testing.TB, within time.Duration) *paho.Publish {
	t.Helper()
	select {
	case p := <-m.msgs:
		return p
	case <-time.After(within):
		t.Fatalf("no message within %v", within)
		return nil
	}
}

func TestEventReachesBrowserChannel(t *testing.T) {
	g := startGateway(t, t.TempDir())
	s := g.newSession(t)
	if s.MQTT.URL == "" || s.ClientID != s.Channel || s.Topic != "apps/demo/channels/"+s.Channel+"/#" {
		t.Fatalf("session: got %+v", s)
	}
	mc, _, err := dialMQTT(t, s.MQTT.URL, browserConnect(s, true))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	ctx := context.Background()
	sa, err := mc.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.Topic, QoS: 1}}})
	if err != nil || sa.Reasons[0] != 1 {
		t.Fatalf("subscribe own channel: got %v %v, want granted QoS 1", sa, err)
	}
	resp, body := postJSON(t, g.base+"/v1/events", testAPIKey, map[string]any{
		"v": 1, "type": "x.hello", "id": "evt_test_1", "channel": s.Channel, "seq": 1, "data": map[string]string{"hi": "there"},
	})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: got %d %s, want 202", resp.StatusCode, body)
	}
	p := mc.next(t, 5*time.Second)
	var got map[string]any
	if err := json.Unmarshal(p.Payload, &got); err != nil {
		t.Fatal(err)
	}
	if p.Topic != "apps/demo/channels/"+s.Channel+"/events" || got["id"] != "evt_test_1" || got["app"] != "demo" || p.QoS != 1 {
		t.Fatalf("received %s qos %d %s", p.Topic, p.QoS, p.Payload)
	}
}

func TestAPIRefusals(t *testing.T) {
	g := startGateway(t, t.TempDir())
	s := g.newSession(t)
	valid := map[string]any{"v": 1, "type": "x.a", "id": "e1", "channel": s.Channel}
	tests := []struct {
		name     string
		path     string
		bearer   string
		body     any
		raw      string
		wantCode int
		wantErr  string
	}{
		{"events without key", "/v1/events", "", valid, "", 401, "unauthorized"},
		{"events with wrong key", "/v1/events", "wrong-key-0123456789", valid, "", 401, "unauthorized"},
		{"events with session token", "/v1/events", s.Token, valid, "", 401, "unauthorized"},
		{"event for another app", "/v1/events", testAPIKey, map[string]any{"v": 1, "type": "x.a", "id": "e", "app": "other", "channel": s.Channel}, "", 400, "invalid_event"},
		{"event with wildcard channel", "/v1/events", testAPIKey, map[string]any{"v": 1, "type": "x.a", "id": "e", "channel": "+"}, "", 400, "invalid_event"},
		{"malformed json", "/v1/events", testAPIKey, nil, "{", 400, "invalid_event"},
		{"huge event", "/v1/events", testAPIKey, map[string]any{"v": 1, "type": "x.a", "id": "e", "channel": s.Channel, "data": strings.Repeat("a", 200<<10)}, "", 413, "too_large"},
		{"session for unknown app", "/v1/sessions", "", map[string]string{"app": "nope"}, "", 404, "not_found"},
		{"session without app", "/v1/sessions", "", map[string]string{}, "", 400, "bad_request"},
		{"session with bad key", "/v1/sessions", "bad-key-0123456789", map[string]string{"app": "demo"}, "", 401, "unauthorized"},
		{"unknown endpoint", "/v1/nope", "", map[string]string{}, "", 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp *http.Response
			var body []byte
			if tt.raw != "" {
				req, _ := http.NewRequest(http.MethodPost, g.base+tt.path, strings.NewReader(tt.raw))
				req.Header.Set("Authorization", "Bearer "+tt.bearer)
				r, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(r.Body)
				r.Body.Close()
				resp = r
			} else {
				resp, body = postJSON(t, g.base+tt.path, tt.bearer, tt.body)
			}
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			_ = json.Unmarshal(body, &e)
			if resp.StatusCode != tt.wantCode || e.Error.Code != tt.wantErr || e.Error.Message == "" {
				t.Fatalf("got %d %s, want %d code %q", resp.StatusCode, body, tt.wantCode, tt.wantErr)
			}
		})
	}
}

func TestForeignOriginRefusedBeforeMQTT(t *testing.T) {
	g := startGateway(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{"Origin": []string{"https://evil.example"}}
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.base, "http")+"/mqtt", &websocket.DialOptions{Subprotocols: []string{"mqtt"}, HTTPHeader: h})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial with foreign origin: got resp %v err %v, want 403", resp, err)
	}
	resp2, body := func() (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodPost, g.base+"/v1/sessions", strings.NewReader(`{"app":"demo"}`))
		req.Header.Set("Origin", "https://evil.example")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r, b
	}()
	if resp2.StatusCode != http.StatusForbidden {
		t.Fatalf("session from foreign origin: got %d %s, want 403", resp2.StatusCode, body)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	g := startGateway(t, t.TempDir())
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "herald_", "/": "<html"} {
		resp, err := http.Get(g.base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(string(b)), strings.ToLower(want)) {
			t.Errorf("GET %s: got %d %.200s, want 200 containing %q", path, resp.StatusCode, b, want)
		}
	}
}

func TestPublishCommand(t *testing.T) {
	g := startGateway(t, t.TempDir())
	s := g.newSession(t)
	mc := subscribedBrowser(t, s)
	var out bytes.Buffer
	args := []string{"publish", "--url", g.base, "--api-key", testAPIKey, "--channel", s.Channel, "--type", "job.completed", "--job", "j1", "--id", "evt_cli", "--data", `{"ok":true}`}
	if err := run(context.Background(), args, &out, func(string) string { return "" }); err != nil {
		t.Fatalf("herald publish: %v (%s)", err, out.String())
	}
	p := mc.next(t, 5*time.Second)
	if p.Topic != "apps/demo/channels/"+s.Channel+"/jobs/j1" {
		t.Fatalf("got topic %q", p.Topic)
	}
	err := run(context.Background(), []string{"publish", "--url", g.base, "--api-key", "wrong-key-000000000", "--channel", s.Channel}, &out, func(string) string { return "" })
	if err == nil {
		t.Fatal("publish with a wrong key succeeded, want an error")
	}
}

// TestMetricsOnOwnListener: with --metrics-addr (HERALD_METRICS_ADDR)
// /metrics is served there and no longer on the public HTTP address.
func TestMetricsOnOwnListener(t *testing.T) {
	addr := testkit.FreeAddr(t)
	g := startGateway(t, t.TempDir(), "--metrics-addr", addr)
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + addr + "/metrics"); code != 200 || !strings.Contains(body, "herald_broker_") {
		t.Errorf("metrics listener: got %d %.200s", code, body)
	}
	if code, _ := get(g.base + "/metrics"); code != http.StatusNotFound {
		t.Errorf("public /metrics: got %d, want 404", code)
	}
	if code, _ := get(g.base + "/healthz"); code != 200 {
		t.Errorf("public /healthz: got %d", code)
	}
}
