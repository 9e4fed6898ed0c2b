package broker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/topic"
)

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestStorageShrinksAgain fills the storage file with what a burst leaves
// behind — retained 100 KB messages that expire after two seconds (from a
// real MQTT 5 service) and the queued messages of a persistent browser
// session that ends — and checks that once they are gone the file is
// compacted back to a fraction of its size, and that a restart reloads
// none of it.
func TestStorageShrinksAgain(t *testing.T) {
	reg, err := tenant.NewRegistry([]tenant.App{{ID: "demo", APIKey: demoKey, Secret: strings.Repeat("d", 32),
		Origins: []string{demoOrigin}, MaxRetained: -1, MaxRetainedBytes: -1, MaxQueued: -1, MaxQueuedBytes: -1}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "broker.db")
	metrics := prometheus.NewRegistry()
	cfg := Config{Registry: reg, DataDir: dir, Metrics: metrics, CompactMinFree: 1 << 20, CompactInterval: 200 * time.Millisecond}
	tb := startBroker(t, cfg)

	s := offlineBrowser(t, tb, 2)

	svc := mustConnect(t, dialTCP(t, tb), "svc-burst", "demo", demoKey)
	payload := make([]byte, 100<<10)
	expiry := uint32(2)
	ctx := context.Background()
	publish := func(name string, retain bool) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		pr, err := svc.Publish(pctx, &paho.Publish{Topic: name, QoS: 1, Retain: retain, Payload: payload,
			Properties: &paho.PublishProperties{MessageExpiry: &expiry}})
		if pr == nil || pr.ReasonCode != 0 {
			t.Fatalf("publish %s: %+v %v", name, pr, err)
		}
	}
	for i := range 150 {
		publish(fmt.Sprintf("apps/demo/status/%d", i), true)
	}
	for range 50 {
		publish(topic.Events("demo", s.Channel), false)
	}
	before := fileSize(t, path)
	if before < 20<<20 {
		t.Fatalf("storage file is %d bytes after 20 MB of messages", before)
	}

	// The retained messages expire, the session ends: all is reclaimed.
	start := time.Now()
	testkit.WaitFor(t, 20*time.Second, "every retained message expired and the file compacted", func() bool {
		expired := metricValue(t, metrics, "herald_broker_retained_reclaimed_total", map[string]string{"app": "demo", "reason": "expired"})
		_, gone := tb.srv.Clients.Get(s.Channel)
		compacted := metricValue(t, metrics, "herald_broker_storage_compactions_total", nil)
		return expired == 150 && !gone && compacted >= 1 && fileSize(t, path) < before/20
	})
	after := fileSize(t, path)
	t.Logf("broker.db: %.1f MB with 150 retained + 50 queued 100 KB messages, %.2f MB %v after the last publish (2 s expiry)",
		float64(before)/1e6, float64(after)/1e6, time.Since(start).Round(100*time.Millisecond))

	tb.stop()
	cfg.Metrics = nil
	tb = startBroker(t, cfg)
	for name := range tb.srv.Topics.Retained.GetAll() {
		if strings.HasPrefix(name, "apps/") {
			t.Errorf("retained message %s reloaded after the restart", name)
		}
	}
	if _, ok := tb.srv.Clients.Get(s.Channel); ok {
		t.Errorf("the ended session was reloaded")
	}
	if got := fileSize(t, path); got > after {
		t.Errorf("file grew to %d bytes after a restart (was %d)", got, after)
	}
}

// TestSessionExpiredWhileDownIsReclaimed stops the broker while a
// persistent browser session (expiry 1 s) waits offline with a queued
// event, and starts it again 2 s later: that session is gone (its client
// finds no session, its event and filters are not reloaded), while a
// session with an hour to live is still there.
func TestSessionExpiredWhileDownIsReclaimed(t *testing.T) {
	dir := t.TempDir()
	tb := startBroker(t, Config{DataDir: dir})
	short, long := mint(t, tb, "demo"), mint(t, tb, "demo")
	for _, c := range []struct {
		s      tenant.Session
		expiry uint32
	}{{short, 1}, {long, 3600}} {
		b := mustConnect(t, dialTCP(t, tb), c.s.Channel, "demo", c.s.Token, withSession(c.expiry))
		b.subscribe(t, topic.ChannelFilter("demo", c.s.Channel))
		_ = b.Disconnect(&paho.Disconnect{})
	}
	testkit.WaitFor(t, 5*time.Second, "browsers offline", func() bool { return tb.Clients() == 0 })
	if err := tb.Publish(context.Background(), topic.Events("demo", short.Channel), []byte("queued"), PublishOptions{QoS: 1}); err != nil {
		t.Fatal(err)
	}
	tb.stop()
	time.Sleep(2 * time.Second)

	tb = startBroker(t, Config{DataDir: dir})
	if _, ok := tb.srv.Clients.Get(short.Channel); ok {
		t.Errorf("the session that expired while the broker was down was restored")
	}
	if _, ok := tb.srv.Clients.Get(long.Channel); !ok {
		t.Errorf("the session with an hour to live was not restored")
	}
	if subs := tb.srv.Topics.Subscribers(topic.Events("demo", short.Channel)); len(subs.Subscriptions) != 0 {
		t.Errorf("the expired session's filter was indexed: %v", subs.Subscriptions)
	}
	b, ca, err := connect(t, dialTCP(t, tb), short.Channel, "demo", short.Token, withSession(1))
	if err != nil || ca.SessionPresent {
		t.Fatalf("reconnect: session present %v, err %v; want a new session", ca != nil && ca.SessionPresent, err)
	}
	b.none(t, 300*time.Millisecond)
}
