package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/topic"
)

// capRegistry has app demo with small caps: 3 retained messages, 10 KiB
// of them, 3 queued messages.
func capRegistry(t testing.TB) *tenant.Registry {
	t.Helper()
	r, err := tenant.NewRegistry([]tenant.App{
		{ID: "demo", APIKey: demoKey, Secret: strings.Repeat("d", 32), Origins: []string{demoOrigin},
			MaxRetained: 3, MaxRetainedBytes: 10 << 10, MaxQueued: 3},
		{ID: "other", APIKey: otherKey, Secret: strings.Repeat("o", 32), Origins: []string{"https://other.example"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func publishV5(t *testing.T, c *mqttClient, name string, payload []byte, retain bool) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pr, err := c.Publish(ctx, &paho.Publish{Topic: name, QoS: 1, Retain: retain, Payload: payload})
	if pr == nil {
		t.Fatalf("publish %s: no PUBACK: %v", name, err)
	}
	return pr.ReasonCode
}

// metricValue is the value of a counter or gauge with labels (a
// histogram's sample count), or 0 when there is none yet.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := testkit.Metric(t, reg, name, labels)
	return v
}

// TestRetainedCaps has a real MQTT 5 service (paho) and a 3.1.1 one fill
// their app's retained messages: beyond the count or the bytes, MQTT 5 gets
// PUBACK 0x97, 3.1.1 is disconnected, the gateway's own Publish gets a
// quota error, and each refusal is counted; replacing or clearing a
// retained message is always allowed. A final job event (MakeRoom) takes
// the place of the app's oldest retained message instead.
func TestRetainedCaps(t *testing.T) {
	reg := prometheus.NewRegistry()
	tb := startBroker(t, Config{Registry: capRegistry(t), Metrics: reg})
	svc := mustConnect(t, dialTCP(t, tb), "svc-retain", "demo", demoKey)
	name := func(i int) string { return fmt.Sprintf("apps/demo/status/%d", i) }
	small := []byte("state")

	for i := range 3 {
		if rc := publishV5(t, svc, name(i), small, true); rc != 0 {
			t.Fatalf("retained #%d: PUBACK %#x, want 0", i, rc)
		}
	}
	if rc := publishV5(t, svc, name(3), small, true); rc != 0x97 {
		t.Fatalf("4th retained message over maxRetained 3: PUBACK %#x, want 0x97", rc)
	}
	if rc := publishV5(t, svc, name(0), []byte("new state"), true); rc != 0 {
		t.Errorf("replacing a retained message at the cap: PUBACK %#x, want 0", rc)
	}
	if rc := publishV5(t, svc, name(1), nil, true); rc != 0 {
		t.Errorf("clearing a retained message at the cap: PUBACK %#x, want 0", rc)
	}
	if rc := publishV5(t, svc, name(3), small, true); rc != 0 {
		t.Errorf("retained message after one was cleared: PUBACK %#x, want 0", rc)
	}
	// Bytes: 3 messages held (0, 2, 3); growing one past 10 KiB is refused.
	if rc := publishV5(t, svc, name(2), make([]byte, 11<<10), true); rc != 0x97 {
		t.Errorf("retained message over maxRetainedBytes: PUBACK %#x, want 0x97", rc)
	}
	if rc := publishV5(t, svc, "apps/demo/live", small, false); rc != 0 {
		t.Errorf("a publish without retain at the retained cap: PUBACK %#x, want 0", rc)
	}

	v3 := newRaw(dialTCP(t, tb))
	v3.send(t, rawConnect(4, "svc-retain-v3", "demo", demoKey, true))
	v3.read(t)
	v3.send(t, rawRetainedQoS1(name(9), 7, "from 3.1.1"))
	if err := v3.closed(2 * time.Second); err != nil {
		t.Fatalf("MQTT 3.1.1 retained publish over the cap: %v, want disconnected", err)
	}

	ctx := context.Background()
	err := tb.Publish(ctx, name(10), small, PublishOptions{QoS: 1, Retain: true})
	var qe *tenant.QuotaError
	if !errors.As(err, &qe) || qe.Limit != "maxRetained" || qe.RetryAfter() <= 0 {
		t.Fatalf("gateway publish over the cap: %v, want a maxRetained QuotaError with a Retry-After", err)
	}
	if err := tb.Publish(ctx, name(11), small, PublishOptions{QoS: 1, Retain: true, MakeRoom: true}); err != nil {
		t.Fatalf("final job event at the cap: %v", err)
	}
	// The oldest (name 2; 0 was replaced after it) made room.
	sub := mustConnect(t, dialTCP(t, tb), "svc-reader", "demo", demoKey)
	sub.subscribe(t, "apps/demo/status/+")
	got := map[string]string{}
	for range 3 {
		m := sub.next(t, 2*time.Second)
		got[m.Topic] = string(m.Payload)
	}
	sub.none(t, 200*time.Millisecond)
	if _, ok := got[name(11)]; !ok || got[name(0)] != "new state" || got[name(3)] != "state" {
		t.Errorf("retained after making room: %v, want %s, %s and %s", got, name(0), name(3), name(11))
	}

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"herald_broker_quota_refused_total", map[string]string{"app": "demo", "limit": "maxRetained"}, 3},
		{"herald_broker_quota_refused_total", map[string]string{"app": "demo", "limit": "maxRetainedBytes"}, 1},
		{"herald_broker_retained_reclaimed_total", map[string]string{"app": "demo", "reason": "evicted"}, 1},
		{"herald_broker_app_retained_messages", map[string]string{"app": "demo"}, 3},
	} {
		if got := metricValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Other apps have their own room.
	osvc := mustConnect(t, dialTCP(t, tb), "svc-other", "other", otherKey)
	if rc := publishV5(t, osvc, "apps/other/status/1", small, true); rc != 0 {
		t.Errorf("another app's retained message: PUBACK %#x, want 0", rc)
	}
}

// TestQueuedCap fills the offline queue of an app's persistent browser
// session to its cap: the next QoS 1 publish to the app is refused (MQTT 5
// PUBACK 0x97; POST /v1/events' Publish a quota error) until the browser
// comes back and takes its messages.
func TestQueuedCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	tb := startBroker(t, Config{Registry: capRegistry(t), Metrics: reg, DataDir: t.TempDir()})
	s := offlineBrowser(t, tb, 3600)

	svc := mustConnect(t, dialTCP(t, tb), "svc-queue", "demo", demoKey)
	events := topic.Events("demo", s.Channel)
	for i := range 3 {
		if rc := publishV5(t, svc, events, []byte{byte('0' + i)}, false); rc != 0 {
			t.Fatalf("event #%d for the offline browser: PUBACK %#x, want 0", i, rc)
		}
	}
	if rc := publishV5(t, svc, events, []byte("3"), false); rc != 0x97 {
		t.Fatalf("4th event with 3 queued (maxQueued 3): PUBACK %#x, want 0x97", rc)
	}
	err := tb.Publish(context.Background(), events, []byte("4"), PublishOptions{QoS: 1})
	if !errors.Is(err, tenant.ErrQuota) {
		t.Fatalf("gateway publish over the queued cap: %v, want ErrQuota", err)
	}
	if got := metricValue(t, reg, "herald_broker_quota_refused_total", map[string]string{"app": "demo", "limit": "maxQueued"}); got != 2 {
		t.Errorf("refusals counted: %v, want 2", got)
	}
	if got := metricValue(t, reg, "herald_broker_app_queued_messages", map[string]string{"app": "demo"}); got != 3 {
		t.Errorf("herald_broker_app_queued_messages = %v, want 3", got)
	}

	back := mustConnect(t, dialTCP(t, tb), s.Channel, "demo", s.Token, withSession(3600))
	for i := range 3 {
		if m := back.next(t, 5*time.Second); string(m.Payload) != string(rune('0'+i)) {
			t.Fatalf("message %d: %q", i, m.Payload)
		}
	}
	testkit.WaitFor(t, 5*time.Second, "queue drained", func() bool {
		return metricValue(t, reg, "herald_broker_app_queued_messages", map[string]string{"app": "demo"}) == 0
	})
	if rc := publishV5(t, svc, events, []byte("5"), false); rc != 0 {
		t.Errorf("publish after the browser took its messages: PUBACK %#x, want 0", rc)
	}
}

// rawRetainedQoS1 is a 3.1.1 QoS 1 PUBLISH with the retain flag.
func rawRetainedQoS1(name string, id uint16, payload string) []byte {
	p := rawPublishQoS1(4, name, id, payload)
	p[0] |= 0x01
	return p
}

// offlineBrowser is a persistent browser session of app demo (session
// expiry in seconds), subscribed to its channel and gone offline.
func offlineBrowser(t *testing.T, tb *testBroker, expiry uint32) tenant.Session {
	t.Helper()
	s := mint(t, tb, "demo")
	browser := mustConnect(t, dialTCP(t, tb), s.Channel, "demo", s.Token, withSession(expiry))
	browser.subscribe(t, topic.ChannelFilter("demo", s.Channel))
	_ = browser.Disconnect(&paho.Disconnect{})
	testkit.WaitFor(t, 5*time.Second, "browser offline", func() bool { return tb.Clients() == 0 })
	return s
}
