package federation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/bridge/bridgetest"
	"github.com/heraldgw/herald/broker"
	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/federation"
	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/topic"
)

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// replica is an embedded broker federated with the upstream broker, its
// /mqtt served by an httptest server.
type replica struct {
	b   *broker.Broker
	fed *federation.Federation
	ws  string
}

func startReplica(t *testing.T, reg *tenant.Registry, upstream string, grace time.Duration) *replica {
	t.Helper()
	b, err := broker.New(broker.Config{Registry: reg, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	fed, err := federation.New(federation.Config{URL: upstream, ClientID: fmt.Sprintf("herald-fed-%d", time.Now().UnixNano()),
		Grace: grace, MaxReconnectDelay: 300 * time.Millisecond, Logger: logger()}, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ObserveChannels(fed); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{b.Run, fed.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				t.Errorf("run: %v", err)
			}
		}()
	}
	srv := httptest.NewServer(b.WebSocketHandler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		wg.Wait()
	})
	for end := time.Now().Add(10 * time.Second); !b.Ready() || !fed.Ready(); {
		if time.Now().After(end) {
			t.Fatal("replica not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &replica{b: b, fed: fed, ws: "ws" + strings.TrimPrefix(srv.URL, "http") + "/mqtt"}
}

// browser is a paho.golang client with a session token on a replica.
type browser struct {
	ch   string
	mu   sync.Mutex
	got  []event.Envelope
	more chan struct{}
	stop func()
}

func connectBrowser(t *testing.T, reg *tenant.Registry, wsURL string) *browser {
	t.Helper()
	s, err := reg.Mint("demo", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	br := &browser{ch: s.Channel, more: make(chan struct{}, 1)}
	u, _ := url.Parse(wsURL)
	subscribed := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 60, CleanStartOnInitialConnection: true,
		ConnectUsername: "demo", ConnectPassword: []byte(s.Token),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic.ChannelFilter("demo", s.Channel), QoS: 1}}})
			select {
			case subscribed <- err:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: s.Channel,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				var e event.Envelope
				if err := json.Unmarshal(pr.Packet.Payload, &e); err == nil {
					br.mu.Lock()
					br.got = append(br.got, e)
					br.mu.Unlock()
					select {
					case br.more <- struct{}{}:
					default:
					}
				}
				return true, nil
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	br.stop = func() { cancel(); <-cm.Done() }
	t.Cleanup(br.stop)
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("browser subscribe: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("browser did not subscribe")
	}
	return br
}

func (br *browser) waitFor(t *testing.T, n int) []event.Envelope {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		br.mu.Lock()
		got := append([]event.Envelope(nil), br.got...)
		br.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-br.more:
		case <-deadline:
			t.Fatalf("channel %s: got %d events, want %d", br.ch, len(got), n)
		}
	}
}

func testRegistry(t *testing.T) *tenant.Registry {
	t.Helper()
	reg, err := tenant.NewRegistry([]tenant.App{{ID: "demo", APIKey: "demo-api-key-0123456789", Secret: strings.Repeat("s", 32), Origins: []string{"*"}}})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func ev(ch string, seq int64, typ string) *event.Envelope {
	e := &event.Envelope{V: 1, Type: typ, ID: fmt.Sprintf("evt_%s_%d", ch, seq), JobID: "j1", App: "demo", Channel: ch,
		Seq: seq, Time: time.Now().UTC()}
	if typ == event.TypeProgress {
		e.Progress = &event.Progress{Done: 1, Total: 2}
	}
	return e
}

func startPublisher(t *testing.T, url string) *bridge.MQTT {
	t.Helper()
	pub, err := bridge.NewMQTT(context.Background(), bridge.MQTTConfig{URL: url, ClientID: fmt.Sprintf("svc-pub-%d", time.Now().UnixNano()),
		MaxReconnectDelay: 300 * time.Millisecond, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = pub.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return pub
}

// TestReplicasGetEventsPublishedAnywhere: browsers on two replicas each get
// exactly their own channel's events, published upstream by one publisher.
func TestReplicasGetEventsPublishedAnywhere(t *testing.T) {
	m := bridgetest.Start(t)
	reg := testRegistry(t)
	up := "mqtt://" + m.PlainAddr
	r1, r2 := startReplica(t, reg, up, time.Minute), startReplica(t, reg, up, time.Minute)
	var browsers []*browser
	for i := range 6 {
		browsers = append(browsers, connectBrowser(t, reg, []*replica{r1, r2}[i%2].ws))
	}
	if got := r1.fed.Channels() + r2.fed.Channels(); got != 6 {
		t.Errorf("channels followed: got %d, want 6", got)
	}
	pub := startPublisher(t, up)
	for _, br := range browsers {
		for seq := int64(1); seq <= 3; seq++ {
			typ := event.TypeProgress
			if seq == 3 {
				typ = event.TypeCompleted
			}
			if err := pub.Publish(context.Background(), ev(br.ch, seq, typ)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, br := range browsers {
		got := br.waitFor(t, 3)
		for i, e := range got {
			if e.Channel != br.ch || e.Seq != int64(i+1) {
				t.Errorf("browser %s event %d: got channel %s seq %d", br.ch, i, e.Channel, e.Seq)
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, br := range browsers {
		if n := len(br.waitFor(t, 3)); n != 3 {
			t.Errorf("browser %s: got %d events, want exactly 3", br.ch, n)
		}
	}
}

// TestResubscribeAfterUpstreamRestart: after the upstream broker restarts,
// the replica follows its channels again.
func TestResubscribeAfterUpstreamRestart(t *testing.T) {
	m := bridgetest.Start(t)
	reg := testRegistry(t)
	up := "mqtt://" + m.PlainAddr
	r := startReplica(t, reg, up, time.Minute)
	br := connectBrowser(t, reg, r.ws)
	pub := startPublisher(t, up)
	if err := pub.Publish(context.Background(), ev(br.ch, 1, event.TypeProgress)); err != nil {
		t.Fatal(err)
	}
	br.waitFor(t, 1)
	m.Stop()
	for end := time.Now().Add(5 * time.Second); r.fed.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("federation still up after the upstream stopped")
		}
	}
	m.Start()
	for end := time.Now().Add(10 * time.Second); !r.fed.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("federation did not reconnect")
		}
	}
	time.Sleep(300 * time.Millisecond) // the resubscribe follows the reconnect
	if err := pub.Publish(context.Background(), ev(br.ch, 2, event.TypeProgress)); err != nil {
		t.Fatal(err)
	}
	if got := br.waitFor(t, 2); got[1].Seq != 2 {
		t.Errorf("after restart: got seq %d, want 2", got[1].Seq)
	}
}

// TestChannelLeftAfterGrace: the upstream subscription ends a grace period
// after the browser leaves, not before.
func TestChannelLeftAfterGrace(t *testing.T) {
	m := bridgetest.Start(t)
	reg := testRegistry(t)
	r := startReplica(t, reg, "mqtt://"+m.PlainAddr, 300*time.Millisecond)
	br := connectBrowser(t, reg, r.ws)
	if got := r.fed.Channels(); got != 1 {
		t.Fatalf("channels: got %d, want 1", got)
	}
	br.stop()
	time.Sleep(100 * time.Millisecond)
	if got := r.fed.Channels(); got != 1 {
		t.Errorf("within grace: got %d channels, want 1", got)
	}
	for end := time.Now().Add(5 * time.Second); r.fed.Channels() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("channel still followed 5s after the grace period")
		}
	}
}
