package broker

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/revocation"
	"github.com/heraldgw/herald/topic"
)

// TestRevokeDeletesSession: a revoked channel's persistent session goes
// at once, with what it queued — whether its browser was online (DISCONNECT
// 0x98 first) or away — and does not come back after a restart. No token
// can resume it, so keeping it would only hold the app's queue quota and
// storage until it expired.
func TestRevokeDeletesSession(t *testing.T) {
	revoked, reg := revocableRegistry(t)
	dir := t.TempDir()
	metrics := prometheus.NewRegistry()
	tb := startBroker(t, Config{Registry: reg, Metrics: metrics, DataDir: dir})
	queued := func() float64 {
		return metricValue(t, metrics, "herald_broker_app_queued_messages", map[string]string{"app": "demo"})
	}
	held := func(channel string) bool { _, ok := tb.srv.Clients.Get(channel); return ok }
	revoke := func(channel string) bool {
		t.Helper()
		if _, err := revoked.Revoke(revocation.Record{App: "demo", Channel: channel, Until: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		return tb.Revoke("demo", channel)
	}
	publish := func(channel string, n int) {
		t.Helper()
		for i := range n {
			if err := tb.Publish(context.Background(), topic.Events("demo", channel), []byte{byte('0' + i)}, PublishOptions{QoS: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}

	away := offlineBrowser(t, tb, 3600)
	publish(away.Channel, 3)
	kept := offlineBrowser(t, tb, 3600)
	publish(kept.Channel, 2)
	if got := queued(); got != 5 {
		t.Fatalf("queued before the revocation: %v, want 5", got)
	}
	if revoke(away.Channel) {
		t.Error("Revoke reported a connection for a browser that is away")
	}
	testkit.WaitFor(t, 5*time.Second, "the away browser's session deleted", func() bool { return !held(away.Channel) && queued() == 2 })

	live := mint(t, tb, "demo")
	mc := mustConnect(t, dialTCP(t, tb), live.Channel, "demo", live.Token, withSession(3600))
	mc.subscribe(t, topic.ChannelFilter("demo", live.Channel))
	if !revoke(live.Channel) {
		t.Fatal("Revoke found no connection for the live browser")
	}
	if code := mc.waitDisconnect(t, 2*time.Second); code != 0x98 {
		t.Fatalf("DISCONNECT %#x, want 0x98", code)
	}
	testkit.WaitFor(t, 5*time.Second, "the live browser's session deleted", func() bool { return !held(live.Channel) })
	publish(live.Channel, 2)
	publish(away.Channel, 1)
	if got := queued(); got != 2 {
		t.Errorf("queued after publishing to revoked channels: %v, want 2 (only the other browser's)", got)
	}

	tb.stop()
	tb2 := startBroker(t, Config{Registry: reg, DataDir: dir})
	for _, ch := range []string{away.Channel, live.Channel} {
		if _, ok := tb2.srv.Clients.Get(ch); ok {
			t.Errorf("revoked session %s restored after a restart", ch)
		}
	}
	if _, ok := tb2.srv.Clients.Get(kept.Channel); !ok {
		t.Error("another browser's session was not restored")
	}
}
