package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
)

// externalConfig is a herald.yaml shared by the replicas: the same app (and
// signing secret), so a token minted by one replica is good on the other.
const externalConfig = `apps:
  - id: demo
    apiKey: test-demo-api-key-0123456789
    secret: 0123456789abcdef0123456789abcdef
    origins: ["*"]
    allowAnonymous: true
    eventsPerSecond: 100000
`

// fedBrowser is a paho.golang MQTT 5 client on a replica's /mqtt.
type fedBrowser struct {
	s    session
	mu   sync.Mutex
	got  []event.Envelope
	more chan struct{}
}

func connectFedBrowser(t *testing.T, s session, wsURL string) *fedBrowser {
	t.Helper()
	b := &fedBrowser{s: s, more: make(chan struct{}, 1)}
	u, _ := url.Parse(wsURL)
	subscribed := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 60, CleanStartOnInitialConnection: true,
		ConnectUsername: s.App, ConnectPassword: []byte(s.Token),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.Topic, QoS: 1}}})
			select {
			case subscribed <- err:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: s.ClientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				var e event.Envelope
				if err := json.Unmarshal(pr.Packet.Payload, &e); err != nil {
					t.Errorf("payload: %v", err)
				}
				b.mu.Lock()
				b.got = append(b.got, e)
				b.mu.Unlock()
				select {
				case b.more <- struct{}{}:
				default:
				}
				return true, nil
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-cm.Done() })
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("browser did not subscribe")
	}
	return b
}

func (b *fedBrowser) received() []event.Envelope {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]event.Envelope(nil), b.got...)
}

// TestFederatedReplicas runs two gateway replicas (roles broker,web) as
// separate processes, their embedded brokers federated through a real
// Mosquitto. Browsers connect to one replica; their events are posted to
// the other. Every browser must get exactly its own events, in order.
func TestFederatedReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	m := testkit.StartMosquitto(t)
	cfgFile := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(cfgFile, []byte(externalConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	var replicas []*child
	for i := range 2 {
		replicas = append(replicas, startChild(t, fmt.Sprint("replica", i+1), childOpts{
			dataDir: t.TempDir(), localawsAddr: freeAddr(t), mqttAddr: freeAddr(t),
			env: map[string]string{"HERALD_CONFIG": cfgFile, "HERALD_ROLES": "broker,web",
				"HERALD_FEDERATION_URL": "mqtt://" + m.PlainAddr},
		}))
	}

	const browsers, perBrowser = 30, 10
	var bs []*fedBrowser
	for i := range browsers {
		home := replicas[i%2]
		resp, body := postJSON(t, home.base+"/v1/sessions", "", map[string]string{"app": "demo"})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /v1/sessions: %d %s", resp.StatusCode, body)
		}
		var s session
		if err := json.Unmarshal(body, &s); err != nil {
			t.Fatal(err)
		}
		bs = append(bs, connectFedBrowser(t, s, "ws"+strings.TrimPrefix(home.base, "http")+"/mqtt"))
	}

	// Events for each browser are posted to the replica it is NOT on, from
	// several posters at once; each browser's own events in sequence.
	start := time.Now()
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			other := replicas[(i+1)%2]
			for seq := 1; seq <= perBrowser; seq++ {
				typ, extra := event.TypeProgress, `,"progress":{"done":1,"total":2}`
				if seq == perBrowser {
					typ, extra = event.TypeCompleted, ""
				}
				body := fmt.Sprintf(`{"v":1,"type":%q,"id":"evt_%s_%d","jobId":"j1","channel":%q,"seq":%d%s}`,
					typ, b.s.Channel, seq, b.s.Channel, seq, extra)
				resp, out := postRaw(t, other.base+"/v1/events", "test-demo-api-key-0123456789", body)
				if resp.StatusCode != http.StatusAccepted {
					t.Errorf("POST /v1/events: %d %s", resp.StatusCode, out)
					return
				}
			}
		}()
	}
	wg.Wait()

	deadline := time.Now().Add(30 * time.Second)
	for _, b := range bs {
		for len(b.received()) < perBrowser && time.Now().Before(deadline) {
			select {
			case <-b.more:
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	elapsed := time.Since(start)
	time.Sleep(200 * time.Millisecond) // anything extra would show up now
	total := 0
	for _, b := range bs {
		got := b.received()
		total += len(got)
		if len(got) != perBrowser {
			t.Errorf("browser %s: got %d events, want %d", b.s.Channel, len(got), perBrowser)
		}
		for i, e := range got {
			if e.Channel != b.s.Channel || e.Seq != int64(i+1) {
				t.Errorf("browser %s event %d: got channel %s seq %d", b.s.Channel, i, e.Channel, e.Seq)
				break
			}
		}
	}
	t.Logf("%d events to %d browsers over 2 federated replicas in %v", total, browsers, elapsed.Round(time.Millisecond))
}

func postRaw(t *testing.T, url, bearer, body string) (*http.Response, []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("test body: %v", err)
	}
	return postJSON(t, url, bearer, v)
}
