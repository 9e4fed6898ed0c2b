package federation_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/broker"
	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/federation"
	"github.com/heraldgw/herald/internal/testkit"
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
	b       *broker.Broker
	fed     *federation.Federation
	ws      string
	metrics *prometheus.Registry
}

// subscribes is how many channel filters the replica has subscribed
// upstream so far, resubscribes after a reconnect included.
func (r *replica) subscribes(t *testing.T) float64 {
	t.Helper()
	mfs, err := r.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "herald_federation_subscribes_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func startReplica(t *testing.T, reg *tenant.Registry, upstream string, grace time.Duration) *replica {
	t.Helper()
	b, err := broker.New(broker.Config{Registry: reg, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	metrics := prometheus.NewRegistry()
	fed, err := federation.New(federation.Config{URL: upstream, ClientID: fmt.Sprintf("herald-fed-%d", time.Now().UnixNano()),
		Grace: grace, MaxReconnectDelay: 300 * time.Millisecond, Logger: logger(), Metrics: metrics}, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ObserveChannels(fed); err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, b.Run)
	testkit.Go(t, fed.Run)
	srv := httptest.NewServer(b.WebSocketHandler())
	t.Cleanup(srv.Close)
	testkit.WaitFor(t, 10*time.Second, "replica ready", func() bool { return b.Ready() && fed.Ready() })
	return &replica{b: b, fed: fed, ws: "ws" + strings.TrimPrefix(srv.URL, "http") + "/mqtt", metrics: metrics}
}

// browser is a browser's MQTT client with a session token on a replica.
type browser struct {
	ch string
	*testkit.Subscriber
}

func connectBrowser(t *testing.T, reg *tenant.Registry, wsURL string) *browser {
	t.Helper()
	s, err := reg.Mint("demo", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sub := testkit.Subscribe(t, testkit.SubscriberConfig{URL: wsURL, ClientID: s.Channel, Username: "demo", Password: s.Token,
		Filter: topic.ChannelFilter("demo", s.Channel)})
	return &browser{ch: s.Channel, Subscriber: sub}
}

// waitFor returns the channel's events once at least n arrived.
func (br *browser) waitFor(t *testing.T, n int) []event.Envelope {
	t.Helper()
	return testkit.Decode[event.Envelope](t, br.Wait(t, n, 15*time.Second))
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
	m := testkit.StartMosquitto(t)
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
	// A fourth event to every channel, after the first three arrived: each
	// path delivers in order, so once it is in, a duplicate of the first
	// three from that path would be in too.
	for _, br := range browsers {
		if err := pub.Publish(context.Background(), ev(br.ch, 4, event.TypeCompleted)); err != nil {
			t.Fatal(err)
		}
	}
	for _, br := range browsers {
		got := br.waitFor(t, 4)
		if len(got) != 4 || got[3].Seq != 4 {
			t.Errorf("browser %s: got %d events (last seq %d), want exactly 4 ending with seq 4", br.ch, len(got), got[len(got)-1].Seq)
		}
	}
}

// TestResubscribeAfterUpstreamRestart: after the upstream broker restarts,
// the replica follows its channels again.
func TestResubscribeAfterUpstreamRestart(t *testing.T) {
	m := testkit.StartMosquitto(t)
	reg := testRegistry(t)
	up := "mqtt://" + m.PlainAddr
	r := startReplica(t, reg, up, time.Minute)
	br := connectBrowser(t, reg, r.ws)
	pub := startPublisher(t, up)
	if err := pub.Publish(context.Background(), ev(br.ch, 1, event.TypeProgress)); err != nil {
		t.Fatal(err)
	}
	br.waitFor(t, 1)
	before := r.subscribes(t)
	m.Stop()
	testkit.WaitFor(t, 5*time.Second, "federation down after the upstream stopped", func() bool { return !r.fed.Ready() })
	m.Start()
	testkit.WaitFor(t, 10*time.Second, "federation reconnected", r.fed.Ready)
	// The resubscribe follows the reconnect.
	testkit.WaitFor(t, 10*time.Second, "channel resubscribed upstream", func() bool { return r.subscribes(t) > before })
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
	m := testkit.StartMosquitto(t)
	reg := testRegistry(t)
	const grace = 300 * time.Millisecond
	r := startReplica(t, reg, "mqtt://"+m.PlainAddr, grace)
	br := connectBrowser(t, reg, r.ws)
	if got := r.fed.Channels(); got != 1 {
		t.Fatalf("channels: got %d, want 1", got)
	}
	left := time.Now()
	br.Stop()
	testkit.WaitFor(t, 5*time.Second, "channel left upstream", func() bool { return r.fed.Channels() == 0 })
	if held := time.Since(left); held < grace {
		t.Errorf("channel left %v after the browser, before the %v grace period ended", held, grace)
	}
}
