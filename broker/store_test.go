package broker

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/topic"
)

// QoS 1 messages published while a persistent-session browser is offline
// are delivered once each, in order, when it returns, even after the broker
// restarted.
func TestOfflineDeliveryAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	tb := startBroker(t, Config{DataDir: dir})
	s := mint(t, tb, "demo")
	mc := mustConnect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token, withSession(3600))
	mc.subscribe(t, topic.ChannelFilter("demo", s.Channel))
	if err := mc.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "client gone", func() bool { return tb.Clients() == 0 })

	name := topic.Job("demo", s.Channel, "job1")
	for i := range 20 {
		payload := fmt.Appendf(nil, `{"id":"evt_%d"}`, i)
		if err := tb.Publish(context.Background(), name, payload, PublishOptions{QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// A retained final event with an expiry survives too.
	final := topic.Events("demo", s.Channel)
	if err := tb.Publish(context.Background(), final, []byte(`{"id":"evt_final"}`), PublishOptions{QoS: 1, Retain: true, Expiry: time.Hour}); err != nil {
		t.Fatal(err)
	}
	tb.stop()

	tb2 := startBroker(t, Config{DataDir: dir})
	mc2 := mustConnect(t, dialWS(t, tb2, demoOrigin), s.Channel, "demo", s.Token, withSession(3600))
	var got, want []string
	for i := range 20 {
		want = append(want, fmt.Sprintf(`{"id":"evt_%d"}`, i))
	}
	want = append(want, `{"id":"evt_final"}`)
	for range want {
		got = append(got, string(mc2.next(t, 5*time.Second).Payload))
	}
	mc2.none(t, 300*time.Millisecond)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("received %v, want each once in order %v", got, want)
	}
	// Acknowledged messages are not delivered again after another restart.
	if err := mc2.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "client gone", func() bool { return tb2.Clients() == 0 })
	tb2.stop()
	tb3 := startBroker(t, Config{DataDir: dir})
	mc3 := mustConnect(t, dialWS(t, tb3, demoOrigin), s.Channel, "demo", s.Token, withSession(3600))
	mc3.none(t, 300*time.Millisecond)
	// The retained message is still there for a new subscription, with
	// its remaining expiry.
	mc3.subscribe(t, final)
	m := mc3.next(t, 5*time.Second)
	if string(m.Payload) != `{"id":"evt_final"}` || !m.Retain {
		t.Fatalf("retained: %q retain=%v", m.Payload, m.Retain)
	}
	if m.Properties == nil || m.Properties.MessageExpiry == nil || *m.Properties.MessageExpiry > 3600 || *m.Properties.MessageExpiry < 3500 {
		t.Fatalf("retained message expiry = %+v, want about 3600 s", m.Properties)
	}
}

// A clean session leaves nothing behind.
func TestCleanSessionNotStored(t *testing.T) {
	dir := t.TempDir()
	tb := startBroker(t, Config{DataDir: dir})
	s := mint(t, tb, "demo")
	mc := mustConnect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token)
	mc.subscribe(t, topic.ChannelFilter("demo", s.Channel))
	_ = mc.Disconnect(&paho.Disconnect{})
	testkit.WaitFor(t, 10*time.Second, "client gone", func() bool { return tb.Clients() == 0 })
	if err := tb.Publish(context.Background(), topic.Events("demo", s.Channel), []byte("x"), PublishOptions{QoS: 1}); err != nil {
		t.Fatal(err)
	}
	tb.stop()
	tb2 := startBroker(t, Config{DataDir: dir})
	mc2 := mustConnect(t, dialWS(t, tb2, demoOrigin), s.Channel, "demo", s.Token, withSession(60))
	mc2.none(t, 300*time.Millisecond)
	if n := tb2.srv.Clients.Len(); n != 1 {
		t.Fatalf("sessions after restart = %d, want only the new one", n)
	}
}

func TestPublishRejectsBadInput(t *testing.T) {
	tb := startBroker(t, Config{MaxPacketSize: 1024})
	ctx := context.Background()
	tests := []struct {
		name    string
		topic   string
		payload []byte
		opt     PublishOptions
	}{
		{"wildcard", "apps/demo/#", nil, PublishOptions{}},
		{"sys", "$SYS/x", nil, PublishOptions{}},
		{"qos 2", "apps/demo/x", nil, PublishOptions{QoS: 2}},
		{"too large", "apps/demo/x", make([]byte, 1024), PublishOptions{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tb.Publish(ctx, tt.topic, tt.payload, tt.opt); err == nil {
				t.Fatal("Publish succeeded")
			}
		})
	}
	tb.stop()
	if err := tb.Publish(ctx, "apps/demo/x", nil, PublishOptions{}); err == nil {
		t.Fatal("Publish after stop succeeded")
	}
}

// The same for a 3.1.1 client with clean session = false.
func TestOfflineDeliveryAcrossRestartMQTT311(t *testing.T) {
	dir := t.TempDir()
	tb := startBroker(t, Config{DataDir: dir})
	s := mint(t, tb, "demo")
	rs := newRaw(dialTCP(t, tb))
	rs.send(t, rawConnect(4, s.Channel, "demo", s.Token, false))
	rs.read(t)
	rs.send(t, rawSubscribe(4, 1, topic.ChannelFilter("demo", s.Channel)))
	if h, body := rs.read(t); h != 0x90 || body[2] != 1 {
		t.Fatalf("subscribe: %#x %x", h, body)
	}
	_ = rs.c.Close()
	testkit.WaitFor(t, 10*time.Second, "client gone", func() bool { return tb.Clients() == 0 })
	if err := tb.Publish(context.Background(), topic.Events("demo", s.Channel), []byte("while away"), PublishOptions{QoS: 1}); err != nil {
		t.Fatal(err)
	}
	tb.stop()

	tb2 := startBroker(t, Config{DataDir: dir})
	rs = newRaw(dialTCP(t, tb2))
	rs.send(t, rawConnect(4, s.Channel, "demo", s.Token, false))
	if h, body := rs.read(t); h != 0x20 || body[0] != 1 || body[1] != 0 {
		t.Fatalf("CONNACK %#x %x, want session present", h, body)
	}
	h, body := rs.read(t)
	if h&0xf0 != 0x30 || h&0x06 != 0x02 || !bytes.HasSuffix(body, []byte("while away")) {
		t.Fatalf("got %#x %q, want the QoS 1 PUBLISH", h, body)
	}
	n := int(body[0])<<8 | int(body[1])
	id := body[2+n : 4+n]
	rs.send(t, []byte{0x40, 0x02, id[0], id[1]}) // PUBACK
	if err := rs.closed(300 * time.Millisecond); err == nil {
		t.Fatal("connection closed after PUBACK")
	}
}
