package bridge_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/topic"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newChannel(t *testing.T) string {
	t.Helper()
	ch, err := tenant.NewChannelID()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func progress(ch string, seq int64) *event.Envelope {
	return &event.Envelope{V: 1, Type: event.TypeProgress, ID: fmt.Sprintf("evt_%s_%d", ch, seq), JobID: "job1",
		App: "demo", Channel: ch, Seq: seq, Time: time.Now().UTC(), Progress: &event.Progress{Done: 1, Total: 3}}
}

func completed(ch string, seq int64) *event.Envelope {
	e := progress(ch, seq)
	e.Type, e.Progress = event.TypeCompleted, nil
	return e
}

// startBridge runs a bridge until the test ends.
func startBridge(t *testing.T, cfg bridge.MQTTConfig) *bridge.MQTT {
	t.Helper()
	if cfg.ClientID == "" {
		cfg.ClientID = "svc-test-" + newChannel(t)[:8]
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.MaxReconnectDelay == 0 {
		cfg.MaxReconnectDelay = 300 * time.Millisecond
	}
	b, err := bridge.NewMQTT(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bridge Run: %v", err)
		}
	})
	return b
}

// subscribe stands in for a browser's MQTT.js on Mosquitto's WebSocket
// listener: one channel, a persistent session.
func subscribe(t *testing.T, wsURL, filter string) *testkit.Subscriber {
	t.Helper()
	return testkit.Subscribe(t, testkit.SubscriberConfig{URL: wsURL, ClientID: "browser-" + newChannel(t)[:10], Filter: filter, SessionExpiry: 600})
}

func TestMQTTDeliversOverEachTransport(t *testing.T) {
	m := testkit.StartMosquitto(t)
	tests := []struct {
		name string
		cfg  bridge.MQTTConfig
	}{
		{"plain", bridge.MQTTConfig{URL: "mqtt://" + m.PlainAddr}},
		{"password", bridge.MQTTConfig{URL: "mqtt://" + m.PasswordAddr, Username: testkit.MosquittoUser, Password: testkit.MosquittoPassword}},
		{"mutual TLS", bridge.MQTTConfig{URL: "mqtts://" + m.TLSAddr, TLS: m.ClientTLS()}},
		{"websocket", bridge.MQTTConfig{URL: "ws://" + m.WSAddr}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := newChannel(t)
			sub := subscribe(t, "ws://"+m.WSAddr, topic.ChannelFilter("demo", ch))
			b := startBridge(t, tt.cfg)
			for i := int64(1); i <= 3; i++ {
				e := progress(ch, i)
				if i == 3 {
					e = completed(ch, i)
				}
				if err := b.Publish(context.Background(), e); err != nil {
					t.Fatalf("Publish: %v", err)
				}
			}
			pubs := sub.Wait(t, 3, 10*time.Second)
			got := testkit.Decode[event.Envelope](t, pubs)
			for i, e := range got {
				if e.Seq != int64(i+1) {
					t.Errorf("event %d: got seq %d, want %d", i, e.Seq, i+1)
				}
				if want := topic.Job("demo", ch, "job1"); pubs[i].Topic != want {
					t.Errorf("topic: got %q, want %q", pubs[i].Topic, want)
				}
			}
			final := pubs[2]
			if final.Properties == nil || final.Properties.MessageExpiry == nil || *final.Properties.MessageExpiry == 0 {
				t.Errorf("final event: got no message expiry, want one")
			}
			// The final event is retained: a late subscriber still gets it.
			late := subscribe(t, "ws://"+m.WSAddr, topic.ChannelFilter("demo", ch))
			lpubs := late.Wait(t, 1, 10*time.Second)
			lgot := testkit.Decode[event.Envelope](t, lpubs)
			if lgot[0].Type != event.TypeCompleted || !lpubs[0].Retain {
				t.Errorf("late subscriber: got %s retain=%v, want retained %s", lgot[0].Type, lpubs[0].Retain, event.TypeCompleted)
			}
		})
	}
}

func TestMQTTRefusesBadTLSAndPassword(t *testing.T) {
	m := testkit.StartMosquitto(t)
	tests := []struct {
		name string
		cfg  bridge.MQTTConfig
	}{
		{"wrong password", bridge.MQTTConfig{URL: "mqtt://" + m.PasswordAddr, Username: testkit.MosquittoUser, Password: "nope"}},
		{"no client certificate", bridge.MQTTConfig{URL: "mqtts://" + m.TLSAddr, TLS: &tls.Config{RootCAs: m.ServerCAs}}},
		{"untrusted server", bridge.MQTTConfig{URL: "mqtts://" + m.TLSAddr, TLS: &tls.Config{Certificates: m.ClientTLS().Certificates}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBridge(t, tt.cfg)
			if err := b.Publish(context.Background(), progress(newChannel(t), 1)); err != nil {
				t.Fatalf("Publish (queued): %v", err)
			}
			time.Sleep(700 * time.Millisecond)
			if got := b.Queued(); got != 1 {
				t.Errorf("queued: got %d, want 1 (never delivered)", got)
			}
			if b.Ready() {
				t.Error("Ready: got true, want false")
			}
		})
	}
}

func TestMQTTQueueFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	// Nothing listens on port 9 of loopback (discard; closed here).
	b := startBridge(t, bridge.MQTTConfig{URL: "mqtt://127.0.0.1:9", OutboxMax: 5, Metrics: reg})
	ch := newChannel(t)
	for i := int64(1); i <= 5; i++ {
		if err := b.Publish(context.Background(), progress(ch, i)); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	err := b.Publish(context.Background(), progress(ch, 6))
	if !errors.Is(err, bridge.ErrQueueFull) {
		t.Fatalf("Publish beyond OutboxMax: got %v, want ErrQueueFull", err)
	}
	mfs, _ := reg.Gather()
	var full float64
	for _, mf := range mfs {
		if mf.GetName() == "herald_bridge_queue_full_total" {
			full = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if full != 1 {
		t.Errorf("herald_bridge_queue_full_total: got %v, want 1", full)
	}
}

func TestMQTTConfigRefused(t *testing.T) {
	tests := []struct {
		name string
		cfg  bridge.MQTTConfig
	}{
		{"no url", bridge.MQTTConfig{ClientID: "svc-x"}},
		{"http url", bridge.MQTTConfig{URL: "http://h", ClientID: "svc-x"}},
		{"no host", bridge.MQTTConfig{URL: "mqtt://", ClientID: "svc-x"}},
		{"no client id", bridge.MQTTConfig{URL: "mqtt://h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bridge.NewMQTT(context.Background(), tt.cfg)
			if !errors.Is(err, bridge.ErrConfig) {
				t.Errorf("got %v, want ErrConfig", err)
			}
		})
	}
}
