package testkit

import (
	"context"
	"encoding/json"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// SubscriberConfig is a test MQTT 5 client (paho.golang, as a browser's
// MQTT.js would be) subscribed to one filter at QoS 1.
type SubscriberConfig struct {
	URL                string // mqtt://host:port or ws://host:port/path
	ClientID           string
	Username, Password string
	Filter             string
	// SessionExpiry above zero keeps a persistent session: Clean Start is
	// off (Mosquitto persists only sessions that did not start clean), and
	// the filter is subscribed only when the broker has no session for the
	// client.
	SessionExpiry uint32
}

// Subscriber records every message its subscription receives.
type Subscriber struct {
	mu   sync.Mutex
	msgs []*paho.Publish
	more chan struct{}
	stop func()
}

// Subscribe connects and subscribes, and returns once the first
// subscription is acknowledged (failing the test after 10 s). The client
// reconnects after a lost connection; it stops when the test ends.
func Subscribe(t testing.TB, c SubscriberConfig) *Subscriber {
	t.Helper()
	u, err := url.Parse(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	s := &Subscriber{more: make(chan struct{}, 1)}
	subscribed := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 60, SessionExpiryInterval: c.SessionExpiry,
		CleanStartOnInitialConnection: c.SessionExpiry == 0,
		ReconnectBackoff:              autopaho.NewConstantBackoff(200 * time.Millisecond),
		ConnectUsername:               c.Username, ConnectPassword: []byte(c.Password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ca *paho.Connack) {
			var err error
			if !ca.SessionPresent || c.SessionExpiry == 0 {
				_, err = cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: c.Filter, QoS: 1}}})
			}
			select {
			case subscribed <- err:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: c.ClientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				s.mu.Lock()
				s.msgs = append(s.msgs, pr.Packet)
				s.mu.Unlock()
				select {
				case s.more <- struct{}{}:
				default:
				}
				return true, nil
			}},
		},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s.stop = sync.OnceFunc(func() { cancel(); <-cm.Done() })
	t.Cleanup(s.stop)
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("subscribe %s: %v", c.Filter, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("subscriber %s did not subscribe to %s within 10s", c.ClientID, c.Filter)
	}
	return s
}

// Stop disconnects (the test's end does it too).
func (s *Subscriber) Stop() { s.stop() }

// Messages returns what arrived so far, in order.
func (s *Subscriber) Messages() []*paho.Publish {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*paho.Publish(nil), s.msgs...)
}

// Wait returns the messages once at least n arrived, failing the test if
// they do not within the given time.
func (s *Subscriber) Wait(t testing.TB, n int, within time.Duration) []*paho.Publish {
	t.Helper()
	deadline := time.After(within)
	for {
		if msgs := s.Messages(); len(msgs) >= n {
			return msgs
		}
		select {
		case <-s.more:
		case <-deadline:
			t.Fatalf("got %d messages within %v, want %d", len(s.Messages()), within, n)
		}
	}
}

// Decode unmarshals each message's JSON payload into a T, failing the test
// on a payload that is not one.
func Decode[T any](t testing.TB, msgs []*paho.Publish) []T {
	t.Helper()
	out := make([]T, len(msgs))
	for i, m := range msgs {
		if err := json.Unmarshal(m.Payload, &out[i]); err != nil {
			t.Fatalf("payload on %s: %v", m.Topic, err)
		}
	}
	return out
}
