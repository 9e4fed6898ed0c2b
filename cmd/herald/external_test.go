package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// fedBrowser is a browser's MQTT client on a replica's /mqtt.
type fedBrowser struct {
	s session
	*testkit.Subscriber
}

func connectFedBrowser(t *testing.T, s session, wsURL string) *fedBrowser {
	t.Helper()
	sub := testkit.Subscribe(t, testkit.SubscriberConfig{URL: wsURL, ClientID: s.ClientID, Username: s.App, Password: s.Token, Filter: s.Topic})
	return &fedBrowser{s: s, Subscriber: sub}
}

func (b *fedBrowser) received(t *testing.T) []event.Envelope {
	t.Helper()
	return testkit.Decode[event.Envelope](t, b.Messages())
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
			dataDir: t.TempDir(), localawsAddr: testkit.FreeAddr(t), mqttAddr: testkit.FreeAddr(t),
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
	postAll := func(from, to int) {
		var wg sync.WaitGroup
		for i, b := range bs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := from; seq <= to; seq++ {
					if !postEvent(t, replicas[(i+1)%2].base, b.s.Channel, seq, seq == perBrowser) {
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	postAll(1, perBrowser)
	testkit.Eventually(30*time.Second, func() bool {
		for _, b := range bs {
			if len(b.Messages()) < perBrowser {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(start)
	// One more event each: it follows the others on the same path, so once
	// it is in, any extra copy of the others would be too.
	postAll(perBrowser+1, perBrowser+1)
	for _, b := range bs {
		b.Wait(t, perBrowser+1, 30*time.Second)
	}
	total := 0
	for _, b := range bs {
		got := b.received(t)
		total += len(got) - 1
		if len(got) != perBrowser+1 {
			t.Errorf("browser %s: got %d events, want %d and the last", b.s.Channel, len(got)-1, perBrowser)
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

// postEvent posts event seq of a channel's job to a replica's /v1/events;
// final marks job.completed. It reports (and returns false on) a refusal.
func postEvent(t *testing.T, base, channel string, seq int, final bool) bool {
	typ, extra := event.TypeProgress, `,"progress":{"done":1,"total":2}`
	if final {
		typ, extra = event.TypeCompleted, ""
	}
	body := fmt.Sprintf(`{"v":1,"type":%q,"id":"evt_%s_%d","jobId":"j1","channel":%q,"seq":%d%s}`, typ, channel, seq, channel, seq, extra)
	resp, out := postRaw(t, base+"/v1/events", "test-demo-api-key-0123456789", body)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST /v1/events: %d %s", resp.StatusCode, out)
		return false
	}
	return true
}

func postRaw(t *testing.T, url, bearer, body string) (*http.Response, []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("test body: %v", err)
	}
	return postJSON(t, url, bearer, v)
}
