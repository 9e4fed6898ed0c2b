package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/topic"
)

func TestChannelOf(t *testing.T) {
	for _, tc := range []struct {
		name, app, channel string
		ok                 bool
	}{
		{"apps/demo/channels/c1/events", "demo", "c1", true},
		{"apps/demo/channels/c1/jobs/j1", "demo", "c1", true},
		{"apps/demo/channels/c1/custom/deep/er", "demo", "c1", true},
		{"apps/demo/channels/c1", "", "", false},
		{"apps/demo/channels/c1/", "", "", false},
		{"apps/demo/channels//events", "", "", false},
		{"apps/demo/status", "", "", false},
		{"apps//channels/c1/events", "", "", false},
		{"other/demo/channels/c1/events", "", "", false},
	} {
		app, ch, ok := channelOf(tc.name)
		if app != tc.app || ch != tc.channel || ok != tc.ok {
			t.Errorf("channelOf(%q) = %q, %q, %v; want %q, %q, %v", tc.name, app, ch, ok, tc.app, tc.channel, tc.ok)
		}
	}
}

func TestMatchFilter(t *testing.T) {
	for _, tc := range []struct {
		filter, name string
		want         bool
	}{
		{"a/b/#", "a/b/c", true},
		{"a/b/#", "a/b", true},
		{"a/b/#", "a/b/c/d", true},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/+", "a/b/c", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"#", "a", true},
		{"+/+", "a/b", true},
		{"a/+/#", "a/b", true},
		{"a/b/+", "a/b/", true},
	} {
		if got := matchFilter(tc.filter, tc.name); got != tc.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", tc.filter, tc.name, got, tc.want)
		}
	}
}

// The PUBLISH the direct path writes is mochi's, byte for byte.
func TestAppendPublishMatchesMochi(t *testing.T) {
	base := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "apps/demo/channels/c/events",
		Payload: bytes.Repeat([]byte("p"), 200)}
	cases := map[string]func(*packets.Packet){
		"v4 qos0": func(p *packets.Packet) { p.ProtocolVersion = 4 },
		"v4 qos1 retain": func(p *packets.Packet) {
			p.ProtocolVersion, p.FixedHeader.Qos, p.PacketID, p.FixedHeader.Retain = 4, 1, 7, true
		},
		"v5 bare":   func(p *packets.Packet) { p.ProtocolVersion = 5 },
		"v5 expiry": func(p *packets.Packet) { p.ProtocolVersion, p.Properties.MessageExpiryInterval = 5, 86399 },
		"v5 all simple": func(p *packets.Packet) {
			p.ProtocolVersion, p.FixedHeader.Qos, p.PacketID, p.FixedHeader.Dup = 5, 1, 65535, true
			p.Properties.PayloadFormat, p.Properties.PayloadFormatFlag = 1, true
			p.Properties.MessageExpiryInterval = 1
			p.Properties.SubscriptionIdentifier = []int{0, 5, 300, 268435455}
		},
		"v5 user properties": func(p *packets.Packet) {
			p.ProtocolVersion = 5
			p.Properties.User = []packets.UserProperty{{Key: "k", Val: "v"}}
			p.Properties.ContentType = "application/json"
		},
		"v5 response": func(p *packets.Packet) {
			p.ProtocolVersion, p.Mods.AllowResponseInfo = 5, true
			p.Properties.ResponseTopic, p.Properties.CorrelationData = "r", []byte{1}
		},
		"v4 large": func(p *packets.Packet) { p.ProtocolVersion, p.Payload = 4, bytes.Repeat([]byte("x"), 70000) },
	}
	for name, mod := range cases {
		pk := base
		mod(&pk)
		var want bytes.Buffer
		wpk := pk
		if err := wpk.PublishEncode(&want); err != nil {
			t.Fatal(err)
		}
		got, err := appendPublish([]byte("prefix"), &pk)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got[6:], want.Bytes()) || string(got[:6]) != "prefix" {
			t.Errorf("%s:\n got %x\nwant %x", name, got[6:min(len(got), 80)], want.Bytes()[:min(want.Len(), 74)])
		}
	}
}

// A browser's subscription never stays in mochi's topic index, and every
// message reaches it exactly once, on both QoS levels, before and after it
// resumes its session.
func TestBrowserOutOfTopicIndex(t *testing.T) {
	tb := startBroker(t, Config{DataDir: t.TempDir()})
	s := mint(t, tb, "demo")
	name := topic.Events("demo", s.Channel)
	rs := subscribed(t, dialTCP(t, tb), 5, s)
	inIndex := func() int { return len(tb.srv.Topics.Subscribers(name).Subscriptions) }
	if n := inIndex(); n != 0 {
		t.Fatalf("browser in mochi's index after SUBSCRIBE: %d", n)
	}
	ctx := context.Background()
	for i, qos := range []byte{0, 1, 1, 0} {
		if err := tb.Publish(ctx, name, []byte(strconv.Itoa(i)), PublishOptions{QoS: qos}); err != nil {
			t.Fatal(err)
		}
		p := rs.readPublish(t, 5)
		if p.payload != strconv.Itoa(i) || p.qos != qos {
			t.Fatalf("got %+v, want payload %d at QoS %d", p, i, qos)
		}
		if qos > 0 {
			rs.puback(t, p.id)
		}
	}
	rs.silent(t, 200*time.Millisecond)
	_ = rs.c.Close()
	rs = resumed(t, dialTCP(t, tb), 5, s)
	if n := inIndex(); n != 0 {
		t.Fatalf("browser in mochi's index after resuming: %d", n)
	}
	if err := tb.Publish(ctx, name, []byte("after"), PublishOptions{QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if p := rs.readPublish(t, 5); p.payload != "after" {
		t.Fatalf("got %+v", p)
	}
	rs.silent(t, 200*time.Millisecond)
}

// Direct delivery keeps the subscription's terms: only matching topics,
// at most the granted QoS, nothing after UNSUBSCRIBE.
func TestDirectDeliveryKeepsSubscription(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	mc := mustConnect(t, dialTCP(t, tb), s.Channel, "demo", s.Token)
	jobs := "apps/demo/channels/" + s.Channel + "/jobs/+"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := mc.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: jobs, QoS: 0}}}); err != nil {
		t.Fatal(err)
	}
	pub := func(name, payload string) {
		t.Helper()
		if err := tb.Publish(ctx, name, []byte(payload), PublishOptions{QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	pub(topic.Events("demo", s.Channel), "not subscribed")
	pub(topic.Job("demo", s.Channel, "j1"), "job")
	m := mc.next(t, 5*time.Second)
	if string(m.Payload) != "job" || m.QoS != 0 {
		t.Fatalf("got %q at QoS %d, want \"job\" at the granted QoS 0", m.Payload, m.QoS)
	}
	mc.none(t, 200*time.Millisecond)
	if _, err := mc.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{jobs}}); err != nil {
		t.Fatal(err)
	}
	pub(topic.Job("demo", s.Channel, "j2"), "after unsubscribe")
	mc.none(t, 300*time.Millisecond)
}

// A service subscribed to the app's channels still gets every message
// through mochi, and the browser still gets each once.
func TestServiceAndBrowserBothReceive(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	browser := mustConnect(t, dialTCP(t, tb), s.Channel, "demo", s.Token)
	browser.subscribe(t, topic.ChannelFilter("demo", s.Channel))
	svc := mustConnect(t, dialTCP(t, tb), "svc-watch", "demo", demoKey)
	svc.subscribe(t, "apps/demo/channels/+/events")
	if tb.direct.onlyDirect("demo") {
		t.Fatal("app with a subscribed service still skips mochi's delivery")
	}
	ctx := context.Background()
	for i := range 3 {
		if err := tb.Publish(ctx, topic.Events("demo", s.Channel), []byte(strconv.Itoa(i)), PublishOptions{QoS: byte(i % 2)}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*mqttClient{browser, svc} {
			if m := c.next(t, 5*time.Second); string(m.Payload) != strconv.Itoa(i) {
				t.Fatalf("got %q, want %d", m.Payload, i)
			}
		}
	}
	browser.none(t, 200*time.Millisecond)
	svc.none(t, 10*time.Millisecond)
	_ = svc.Disconnect(&paho.Disconnect{})
	testkit.WaitFor(t, 5*time.Second, "service's filters forgotten", func() bool { return tb.direct.onlyDirect("demo") })
}

// A browser announcing a Receive Maximum never has more than that many
// QoS 1 messages unacknowledged, and gets all of them, in order, as it
// acknowledges.
func TestReceiveMaximumWindow(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	rs := newRaw(dialTCP(t, tb))
	body := mqttString(nil, "MQTT")
	body = append(body, 5, 0xC2)
	body = binary.BigEndian.AppendUint16(body, 60)
	body = append(body, 3, 0x21, 0, 2) // Receive Maximum 2
	for _, f := range []string{s.Channel, "demo", s.Token} {
		body = mqttString(body, f)
	}
	rs.send(t, packet(0x10, body))
	rs.read(t)
	rs.send(t, rawSubscribe(5, 1, topic.ChannelFilter("demo", s.Channel)))
	rs.read(t)
	const n = 10
	for i := range n {
		if err := tb.Publish(context.Background(), topic.Events("demo", s.Channel), []byte(strconv.Itoa(i)), PublishOptions{QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var window []rawPublish
	for next := 0; next < n; {
		for len(window) < 2 && next+len(window) < n {
			window = append(window, rs.readPublish(t, 5))
		}
		rs.silent(t, 100*time.Millisecond) // nothing beyond the window
		if window[0].payload != strconv.Itoa(next) {
			t.Fatalf("got %q, want %d", window[0].payload, next)
		}
		rs.puback(t, window[0].id)
		window = window[1:]
		next++
	}
}

// A subscriber whose socket is full slows the publisher (counted) before
// its queue overflows; then it is disconnected and the drop counted.
func TestBackpressureBeforeDrop(t *testing.T) {
	tb := startBroker(t, Config{MaxQueued: 8})
	s := mint(t, tb, "demo")
	rs := newRaw(dialTCP(t, tb))
	rs.send(t, rawConnect(5, s.Channel, "demo", s.Token, true))
	rs.read(t)
	rs.send(t, rawSubscribe(5, 1, topic.ChannelFilter("demo", s.Channel)))
	rs.read(t)
	payload := bytes.Repeat([]byte("x"), 64<<10)
	for i := 0; i < 400 && counterValue(t, tb.metrics.dropped.WithLabelValues("queue_full")) == 0; i++ {
		if err := tb.Publish(context.Background(), topic.Events("demo", s.Channel), payload, PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if counterValue(t, tb.metrics.dropped.WithLabelValues("queue_full")) == 0 {
		t.Fatal("nothing dropped for a client that reads nothing")
	}
	if w := counterValue(t, tb.metrics.backpressure); w < backpressureWait.Seconds() {
		t.Fatalf("publisher waited %.3f s before the drop, want ≥ %v", w, backpressureWait)
	}
}

// matchFilter agrees with mochi's topic index on every valid filter and
// topic name without empty levels (Herald's topic names have none), except
// where mochi departs from MQTT's rules: it does not let "+/#" match a name
// that ends at the "+" level ("a/+/#" and "a/b"), as "#" matches its
// parent level [MQTT-4.7.1-2].
func FuzzMatchFilter(f *testing.F) {
	for _, s := range [][2]string{{"a/b/#", "a/b"}, {"a/+/c", "a/b/c"}, {"+/+", "a/b"}, {"a/b/+", "a/b/c"}, {"#", "x"}, {"a//b", "a/c/b"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, name string) {
		if !mqtt.IsValidFilter(filter, false) || !mqtt.IsValidFilter(name, true) || mqtt.IsSharedFilter(filter) ||
			strings.HasPrefix(name, "$") || strings.HasPrefix(filter, "$") ||
			strings.Contains("/"+name+"/", "//") {
			return
		}
		if (filter == "+/#" || strings.HasSuffix(filter, "/+/#")) && strings.Count(name, "/") == strings.Count(filter, "/")-1 {
			return
		}
		idx := mqtt.NewTopicsIndex()
		idx.Subscribe("c", packets.Subscription{Filter: filter})
		want := len(idx.Subscribers(name).Subscriptions) > 0
		if got := matchFilter(filter, name); got != want {
			t.Fatalf("matchFilter(%q, %q) = %v, mochi says %v", filter, name, got, want)
		}
	})
}
