package broker

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/topic"
)

func TestBrowserReceivesOwnChannelOverWebSocket(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	mc := mustConnect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token)
	if got := mc.subscribe(t, topic.ChannelFilter("demo", s.Channel)); got[0] != 1 {
		t.Fatalf("SUBACK = %#x, want granted QoS 1", got)
	}
	name := topic.Job("demo", s.Channel, "job1")
	if err := tb.Publish(context.Background(), name, []byte(`{"id":"evt_1"}`), PublishOptions{QoS: 1}); err != nil {
		t.Fatal(err)
	}
	m := mc.next(t, 5*time.Second)
	if m.Topic != name || string(m.Payload) != `{"id":"evt_1"}` || m.QoS != 1 {
		t.Fatalf("got %q %q qos %d", m.Topic, m.Payload, m.QoS)
	}
	if got := tb.Clients(); got != 1 {
		t.Fatalf("Clients() = %d, want 1", got)
	}
}

func TestConnectRefused(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	foreign := mint(t, tb, "other")
	expired, err := tb.cfg.Registry.Mint("demo", time.Now().Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		origin         string
		clientID, user string
		pass           string
		opts           []connectOpt
		want           byte
	}{
		{"bad token", demoOrigin, s.Channel, "demo", s.Token + "x", nil, 0x86},
		{"garbage token", demoOrigin, s.Channel, "demo", "not-a-token", nil, 0x86},
		{"expired token", demoOrigin, expired.Channel, "demo", expired.Token, nil, 0x86},
		{"token of another app", demoOrigin, foreign.Channel, "demo", foreign.Token, nil, 0x86},
		{"wrong client id", demoOrigin, mint(t, tb, "demo").Channel, "demo", s.Token, nil, 0x85},
		{"empty client id", demoOrigin, "", "demo", s.Token, nil, 0x85},
		{"unknown app", demoOrigin, s.Channel, "nope", s.Token, nil, 0x86},
		{"origin of another app", "https://other.example", s.Channel, "demo", s.Token, nil, 0x87},
		{"browser will", demoOrigin, s.Channel, "demo", s.Token, []connectOpt{withWill(topic.Events("demo", s.Channel))}, 0x87},
		{"service bad key", "", "svc-worker", "demo", demoKey + "x", nil, 0x86},
		{"service key of another app", "", "svc-worker", "demo", otherKey, nil, 0x86},
		{"service without svc- prefix", "", "worker", "demo", demoKey, nil, 0x86},
		{"service will outside its app", "", "svc-worker", "demo", demoKey, []connectOpt{withWill("apps/other/x")}, 0x87},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ca, err := connect(t, dialWS(t, tb, tt.origin), tt.clientID, tt.user, tt.pass, tt.opts...)
			if err == nil {
				t.Fatal("connect succeeded, want refusal")
			}
			if ca == nil {
				t.Fatalf("no CONNACK: %v", err)
			}
			if got := ca.ReasonCode; got != tt.want {
				t.Fatalf("CONNACK reason = %#x, want %#x", got, tt.want)
			}
		})
	}
	if got := tb.Clients(); got != 0 {
		t.Fatalf("Clients() = %d after refusals", got)
	}
}

func TestConnectRefusedMQTT311(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	tests := []struct {
		name                 string
		clientID, user, pass string
		want                 byte
	}{
		{"good", s.Channel, "demo", s.Token, 0},
		{"bad token", s.Channel, "demo", "x", 4},
		{"unknown app", s.Channel, "nope", s.Token, 4},
		{"wrong client id", "someone-else", "demo", s.Token, 2},
		{"service bad key", "svc-a", "demo", "x", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := newRaw(dialTCP(t, tb))
			rs.send(t, rawConnect(4, tt.clientID, tt.user, tt.pass, true))
			h, body := rs.read(t)
			if h != 0x20 || len(body) != 2 {
				t.Fatalf("got packet %#x %x, want CONNACK", h, body)
			}
			if got := body[1]; got != tt.want {
				t.Fatalf("CONNACK return code = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestSubscribeACL(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	other := mint(t, tb, "demo")
	foreign := mint(t, tb, "other")
	own := "apps/demo/channels/" + s.Channel
	mc := mustConnect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token)
	tests := []struct {
		name    string
		filters []string
		want    []byte
	}{
		{"own channel", []string{own + "/#"}, []byte{1}},
		{"own job", []string{own + "/jobs/+"}, []byte{1}},
		{"own events", []string{own + "/events"}, []byte{1}},
		{"everything", []string{"#"}, []byte{0x87}},
		{"plus first", []string{"+/demo/channels/" + s.Channel + "/#"}, []byte{0x87}},
		{"any app", []string{"apps/+/channels/" + s.Channel + "/#"}, []byte{0x87}},
		{"any channel", []string{"apps/demo/channels/+/#"}, []byte{0x87}},
		{"app wide", []string{"apps/demo/#"}, []byte{0x87}},
		{"channel itself", []string{own}, []byte{0x87}},
		{"another channel", []string{"apps/demo/channels/" + other.Channel + "/#"}, []byte{0x87}},
		{"another app", []string{"apps/other/channels/" + foreign.Channel + "/#"}, []byte{0x87}},
		{"sys", []string{"$SYS/#"}, []byte{0x87}},
		{"one good one bad", []string{own + "/events", "apps/demo/channels/+/events", own + "/jobs/#"}, []byte{1, 0x87, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mc.subscribe(t, tt.filters...); !bytes.Equal(got, tt.want) {
				t.Fatalf("SUBACK = %#x, want %#x", got, tt.want)
			}
		})
	}
	// Still connected and still only receiving its own channel.
	if err := tb.Publish(context.Background(), topic.Events("demo", other.Channel), []byte("x"), PublishOptions{QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := tb.Publish(context.Background(), topic.Events("demo", s.Channel), []byte("mine"), PublishOptions{QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if m := mc.next(t, 5*time.Second); string(m.Payload) != "mine" {
		t.Fatalf("got %q", m.Payload)
	}
}

func TestSubscribeACLMQTT311(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	rs := newRaw(dialTCP(t, tb))
	rs.send(t, rawConnect(4, s.Channel, "demo", s.Token, true))
	if h, body := rs.read(t); h != 0x20 || body[1] != 0 {
		t.Fatalf("connect: %#x %x", h, body)
	}
	rs.send(t, rawSubscribe(4, 7, topic.ChannelFilter("demo", s.Channel), "#", "$SYS/#"))
	h, body := rs.read(t)
	if h != 0x90 {
		t.Fatalf("got %#x, want SUBACK", h)
	}
	if got, want := body[2:], []byte{1, 0x80, 0x80}; !bytes.Equal(got, want) {
		t.Fatalf("SUBACK codes = %#x, want %#x", got, want)
	}
}

func TestBrowserPublishRefused(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	watcher := mustConnect(t, dialTCP(t, tb), "svc-watch", "demo", demoKey)
	watcher.subscribe(t, "apps/demo/#")

	mc := mustConnect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pr, err := mc.Publish(ctx, &paho.Publish{Topic: topic.Events("demo", s.Channel), QoS: 1, Payload: []byte("forged")})
	if err == nil || pr == nil || pr.ReasonCode != 0x87 {
		t.Fatalf("publish QoS 1: %v %+v, want PUBACK 0x87", err, pr)
	}
	if _, err := mc.Publish(ctx, &paho.Publish{Topic: topic.Events("demo", s.Channel), QoS: 0, Payload: []byte("forged0")}); err != nil {
		t.Fatal(err)
	}
	watcher.none(t, 300*time.Millisecond)
}

func TestServicePublishesWithinItsApp(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	browser := mustConnect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token)
	browser.subscribe(t, topic.ChannelFilter("demo", s.Channel))
	f := mint(t, tb, "other")
	foreignBrowser := mustConnect(t, dialWS(t, tb, ""), f.Channel, "other", f.Token)
	foreignBrowser.subscribe(t, topic.ChannelFilter("other", f.Channel))

	svc := mustConnect(t, dialTCP(t, tb), "svc-api", "demo", demoKey)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := svc.Publish(ctx, &paho.Publish{Topic: topic.Events("demo", s.Channel), QoS: 1, Payload: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	if m := browser.next(t, 5*time.Second); string(m.Payload) != "hello" {
		t.Fatalf("got %q", m.Payload)
	}
	pr, err := svc.Publish(ctx, &paho.Publish{Topic: topic.Events("other", f.Channel), QoS: 1, Payload: []byte("cross")})
	if err == nil || pr == nil || pr.ReasonCode != 0x87 {
		t.Fatalf("cross-app publish: %v %+v, want PUBACK 0x87", err, pr)
	}
	foreignBrowser.none(t, 300*time.Millisecond)

	// A service subscribes within its app only.
	if got := svc.subscribe(t, "apps/demo/#", "apps/other/#", "#"); !bytes.Equal(got, []byte{1, 0x87, 0x87}) {
		t.Fatalf("service SUBACK = %#x", got)
	}
}

// A service of another app choosing the same client id must not take over
// (or even see) the first one's session.
func TestServiceClientIDsAreScopedByApp(t *testing.T) {
	tb := startBroker(t, Config{})
	a := mustConnect(t, dialTCP(t, tb), "svc-same", "demo", demoKey)
	a.subscribe(t, "apps/demo/#")
	b := mustConnect(t, dialTCP(t, tb), "svc-same", "other", otherKey)
	_ = b
	if err := tb.Publish(context.Background(), "apps/demo/x", []byte("for demo"), PublishOptions{QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if m := a.next(t, 5*time.Second); string(m.Payload) != "for demo" {
		t.Fatalf("got %q", m.Payload)
	}
	b.none(t, 200*time.Millisecond)
}

func TestForeignOriginRefusedBeforeUpgrade(t *testing.T) {
	tb := startBroker(t, Config{})
	for _, origin := range []string{"https://evil.example", "null", "http://demo.example"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h := http.Header{"Origin": []string{origin}}
		_, resp, err := websocket.Dial(ctx, tb.wsURL, &websocket.DialOptions{Subprotocols: []string{"mqtt"}, HTTPHeader: h})
		cancel()
		if err == nil {
			t.Fatalf("origin %q: upgrade succeeded", origin)
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("origin %q: response %v, want 403", origin, resp)
		}
	}
	// An allowed origin is upgraded.
	_ = dialWS(t, tb, demoOrigin)
}

func TestConnectRateLimitPerIP(t *testing.T) {
	tb := startBroker(t, Config{ConnectRatePerIP: 0.01, ConnectBurst: 2})
	for range 2 {
		_ = dialWS(t, tb, demoOrigin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, tb.wsURL, &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third dial: %v %v, want 429", err, resp)
	}
	// TCP: the connection is closed at once.
	rs := newRaw(dialTCP(t, tb))
	if err := rs.closed(2 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// A browser whose random channel id happens to start with "svc-" still
// connects as a browser. Mint cannot be asked for such a channel, so the
// token is signed here the way tenant signs it (sub = channel, aud = app).
func TestBrowserChannelWithServicePrefix(t *testing.T) {
	tb := startBroker(t, Config{})
	channel := "svc-" + strings.Repeat("A", tenant.ChannelIDLen-4)
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: channel, Audience: jwt.ClaimStrings{"demo"}, Issuer: "herald",
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}).SignedString([]byte(strings.Repeat("d", 32)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.cfg.Registry.Verify("demo", tok, now); err != nil {
		t.Fatalf("test token not accepted by tenant: %v", err)
	}
	mc := mustConnect(t, dialWS(t, tb, demoOrigin), channel, "demo", tok)
	if got := mc.subscribe(t, topic.ChannelFilter("demo", channel), "apps/demo/#"); !bytes.Equal(got, []byte{1, 0x87}) {
		t.Fatalf("SUBACK = %#x: must be treated as a browser", got)
	}
}
