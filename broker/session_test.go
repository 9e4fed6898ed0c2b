package broker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/revocation"
	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/topic"
)

// expiringSoon mints a token of app that expires within d (the expiry is
// whole seconds, so between d-1s and d from now).
func expiringSoon(t *testing.T, reg *tenant.Registry, app string, d time.Duration) tenant.Session {
	t.Helper()
	a, _ := reg.App(app)
	s, err := reg.Mint(app, time.Now().Add(d-a.SessionTTL))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// renew signs a fresh token for s's channel.
func renew(t *testing.T, reg *tenant.Registry, s tenant.Session) tenant.Session {
	t.Helper()
	n, err := reg.Renew(tenant.Claims{App: s.App, Channel: s.Channel}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// authHandler lets paho accept a CONNACK that names an authentication
// method and re-authenticate; the broker never asks to continue.
type authHandler struct{}

func (authHandler) Authenticate(a *paho.Auth) *paho.Auth { return a }
func (authHandler) Authenticated()                       {}

// dialSession connects a browser over WebSocket with a persistent session
// (1 h) and, with reauth, the token authentication method.
func dialSession(t *testing.T, tb *testBroker, s tenant.Session, clean, reauth bool) (*mqttClient, *paho.Connack, error) {
	t.Helper()
	nc := dialWS(t, tb, demoOrigin)
	mc := &mqttClient{msgs: make(chan *paho.Publish, 1024), disconnect: make(chan *paho.Disconnect, 1)}
	cfg := paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(nc),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(p paho.PublishReceived) (bool, error) {
			mc.msgs <- p.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) { mc.disconnect <- d },
	}
	expiry := uint32(3600)
	cp := &paho.Connect{
		ClientID: s.Channel, KeepAlive: 60, CleanStart: clean,
		Username: s.App, UsernameFlag: true, Password: []byte(s.Token), PasswordFlag: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry},
	}
	if reauth {
		cfg.AuthHandler = authHandler{}
		cp.Properties.AuthMethod = AuthMethod
	}
	mc.Client = paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := mc.Connect(ctx, cp)
	return mc, ca, err
}

// waitDisconnect returns the reason of the server's DISCONNECT, failing
// after d.
func (mc *mqttClient) waitDisconnect(t *testing.T, d time.Duration) byte {
	t.Helper()
	select {
	case dp := <-mc.disconnect:
		return dp.ReasonCode
	case <-time.After(d):
		t.Fatalf("no DISCONNECT within %v", d)
		return 0
	}
}

func reauthenticate(mc *mqttClient, token string) (*paho.AuthResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return mc.Authenticate(ctx, &paho.Auth{ReasonCode: 0x19, Properties: &paho.AuthProperties{AuthMethod: AuthMethod, AuthData: []byte(token)}})
}

// TestTokenExpiryEndsConnection: a browser connection ends when its token
// expires, MQTT 5 with DISCONNECT 0xA0 (maximum connect time), 3.1.1 with
// a closed socket; the persistent session keeps what was published
// meanwhile, delivered after a reconnect with a renewed token.
func TestTokenExpiryEndsConnection(t *testing.T) {
	tb := startBroker(t, Config{})
	reg := tb.cfg.Registry
	s := expiringSoon(t, reg, "demo", 2*time.Second)
	mc, _, err := dialSession(t, tb, s, true, false)
	if err != nil {
		t.Fatal(err)
	}
	mc.subscribe(t, topic.ChannelFilter("demo", s.Channel))

	s3 := expiringSoon(t, reg, "demo", 2*time.Second)
	raw := newRaw(dialWS(t, tb, demoOrigin))
	raw.send(t, rawConnect(4, s3.Channel, "demo", s3.Token, true))
	if h, body := raw.read(t); h != 0x20 || body[1] != 0 {
		t.Fatalf("3.1.1 CONNACK %#x %v", h, body)
	}

	if code := mc.waitDisconnect(t, 5*time.Second); code != 0xA0 {
		t.Fatalf("DISCONNECT reason %#x, want 0xA0", code)
	}
	late := time.Since(s.ExpiresAt)
	t.Logf("MQTT 5 connection ended %v after its token expired", late)
	if late < 0 || late > time.Second {
		t.Errorf("ended %v after expiry, want within a second after it", late)
	}
	if err := raw.closed(3 * time.Second); err != nil {
		t.Fatalf("3.1.1 connection: %v", err)
	}

	// Published while the browser is away: queued in its session.
	for i := range 3 {
		if err := tb.Publish(context.Background(), topic.Events("demo", s.Channel), []byte(fmt.Sprint(i)), PublishOptions{QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// The expired token is refused; a renewed one resumes the session.
	if _, ca, err := dialSession(t, tb, s, false, false); err == nil || ca == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("reconnect with the expired token: %v %+v, want CONNACK 0x86", err, ca)
	}
	back, ca, err := dialSession(t, tb, renew(t, reg, s), false, false)
	if err != nil || !ca.SessionPresent {
		t.Fatalf("reconnect with a renewed token: %v %+v", err, ca)
	}
	for i := range 3 {
		if m := back.next(t, 5*time.Second); string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("queued message %d: got %q", i, m.Payload)
		}
	}
}

// TestReauthenticationKeepsConnection: an MQTT 5 browser that connected
// with AuthMethod re-authenticates on the open socket before its token
// expires and stays connected past the old expiry, receiving every event
// published throughout without a gap.
func TestReauthenticationKeepsConnection(t *testing.T) {
	tb := startBroker(t, Config{})
	reg := tb.cfg.Registry
	s := expiringSoon(t, reg, "demo", 2*time.Second)
	mc, ca, err := dialSession(t, tb, s, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Properties == nil || ca.Properties.AuthMethod != AuthMethod {
		t.Fatalf("CONNACK does not echo the authentication method: %+v", ca.Properties)
	}
	mc.subscribe(t, topic.ChannelFilter("demo", s.Channel))

	const n = 40 // one every 100 ms: 4 s, well past the first token's expiry
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := tb.Publish(context.Background(), topic.Events("demo", s.Channel), []byte(fmt.Sprint(i)), PublishOptions{QoS: 1}); err != nil {
				done <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		done <- nil
	}()
	time.Sleep(500 * time.Millisecond)
	ar, err := reauthenticate(mc, renew(t, reg, s).Token)
	if err != nil || !ar.Success || ar.ReasonCode != 0 {
		t.Fatalf("re-authenticate: %+v %v", ar, err)
	}
	for i := range n {
		if m := mc.next(t, 5*time.Second); string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("event %d: got %q", i, m.Payload)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-mc.disconnect:
		t.Fatalf("disconnected (%#x) despite re-authentication", d.ReasonCode)
	default:
	}
	if time.Now().Before(s.ExpiresAt.Add(time.Second)) {
		t.Fatal("test ended before the first token's expiry")
	}
}

// TestReauthenticationRefused: a token that does not verify, or belongs to
// another channel, ends the connection with DISCONNECT 0x87; AUTH without
// the method announced at CONNECT is a protocol error (0x82); an unknown
// method at CONNECT is CONNACK 0x8C.
func TestReauthenticationRefused(t *testing.T) {
	tb := startBroker(t, Config{})
	reg := tb.cfg.Registry
	other, _ := reg.Mint("demo", time.Now())
	expired, _ := reg.Mint("demo", time.Now().Add(-25*time.Hour))
	for name, tc := range map[string]struct {
		reauth bool
		token  func(s tenant.Session) string
		want   byte
	}{
		"another channel's token": {true, func(tenant.Session) string { return other.Token }, 0x87},
		"expired token":           {true, func(tenant.Session) string { return expired.Token }, 0x87},
		"garbage":                 {true, func(tenant.Session) string { return "x.y.z" }, 0x87},
		"no method at CONNECT":    {false, func(s tenant.Session) string { return renew(t, reg, s).Token }, 0x82},
	} {
		t.Run(name, func(t *testing.T) {
			s, _ := reg.Mint("demo", time.Now())
			mc, _, err := dialSession(t, tb, s, true, tc.reauth)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = reauthenticate(mc, tc.token(s))
			if code := mc.waitDisconnect(t, 5*time.Second); code != tc.want {
				t.Fatalf("DISCONNECT %#x, want %#x", code, tc.want)
			}
		})
	}

	s, _ := reg.Mint("demo", time.Now())
	nc := dialWS(t, tb, demoOrigin)
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(nc), AuthHandler: authHandler{}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: s.Channel, KeepAlive: 60, CleanStart: true,
		Username: "demo", UsernameFlag: true, Password: []byte(s.Token), PasswordFlag: true,
		Properties: &paho.ConnectProperties{AuthMethod: "SCRAM-SHA-256"}})
	if err == nil || ca == nil || ca.ReasonCode != 0x8C {
		t.Fatalf("unknown authentication method: %v %+v, want CONNACK 0x8C", err, ca)
	}
}

// revocableRegistry is app demo's registry with revocations kept in
// memory, and the store that revokes.
func revocableRegistry(t *testing.T) (*revocation.Store, *tenant.Registry) {
	t.Helper()
	store, err := revocation.Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := tenant.NewRegistry([]tenant.App{
		{ID: "demo", APIKey: demoKey, Secret: strings.Repeat("d", 32), Origins: []string{demoOrigin}},
	}, tenant.WithRevocations(store))
	if err != nil {
		t.Fatal(err)
	}
	return store, reg
}

// TestRevokeEndsConnection: revoking a channel closes its live connection
// at once — MQTT 5 with DISCONNECT 0x98 (administrative action), 3.1.1 by
// closing — and its tokens are refused afterwards (CONNACK 0x8A banned,
// 3.1.1 0x05), also a renewed one, while other channels carry on.
func TestRevokeEndsConnection(t *testing.T) {
	store, reg := revocableRegistry(t)
	tb := startBroker(t, Config{Registry: reg})
	s, _ := reg.Mint("demo", time.Now())
	keep, _ := reg.Mint("demo", time.Now())
	mc, _, err := dialSession(t, tb, s, true, false)
	if err != nil {
		t.Fatal(err)
	}
	kept, _, err := dialSession(t, tb, keep, true, false)
	if err != nil {
		t.Fatal(err)
	}
	s3, _ := reg.Mint("demo", time.Now())
	raw := newRaw(dialWS(t, tb, demoOrigin))
	raw.send(t, rawConnect(4, s3.Channel, "demo", s3.Token, true))
	raw.read(t)

	start := time.Now()
	for _, ch := range []string{s.Channel, s3.Channel} {
		if _, err := store.Revoke(revocation.Record{App: "demo", Channel: ch, Until: time.Now().Add(24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if !tb.Revoke("demo", ch) {
			t.Fatalf("Revoke(%s) found no connection", ch)
		}
	}
	if code := mc.waitDisconnect(t, time.Second); code != 0x98 {
		t.Fatalf("DISCONNECT %#x, want 0x98", code)
	}
	t.Logf("revoked connection closed after %v", time.Since(start))
	if err := raw.closed(time.Second); err != nil {
		t.Fatalf("3.1.1: %v", err)
	}
	for _, tok := range []string{s.Token, renew(t, reg, s).Token} {
		if _, ca, err := dialSession(t, tb, tenant.Session{App: "demo", Channel: s.Channel, Token: tok}, true, false); err == nil || ca == nil || ca.ReasonCode != 0x8A {
			t.Fatalf("connect with a revoked channel's token: %v %+v, want CONNACK 0x8A", err, ca)
		}
	}
	raw2 := newRaw(dialWS(t, tb, demoOrigin))
	raw2.send(t, rawConnect(4, s3.Channel, "demo", s3.Token, true))
	if h, body := raw2.read(t); h != 0x20 || body[1] != 0x05 {
		t.Fatalf("3.1.1 CONNACK %#x %v, want return code 5", h, body)
	}
	if tb.Revoke("demo", "CCCCCCCCCCCCCCCCCCCCCC") || tb.Revoke("other", keep.Channel) {
		t.Error("Revoke reported a connection it does not hold")
	}
	kept.subscribe(t, topic.ChannelFilter("demo", keep.Channel))
	if err := tb.Publish(context.Background(), topic.Events("demo", keep.Channel), []byte("still here"), PublishOptions{QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if m := kept.next(t, 5*time.Second); string(m.Payload) != "still here" {
		t.Fatalf("another channel's connection: got %q", m.Payload)
	}
	// Ended connections leave the expiry schedule; the live one stays.
	testkit.WaitFor(t, 5*time.Second, "only the live connection scheduled to expire", func() bool { return tb.expiries.len() == 1 })
}
