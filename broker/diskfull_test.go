package broker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/topic"
)

// With its disk full the broker refuses what it cannot keep — Publish with
// ErrStorage, an MQTT 5 QoS 1 publish with PUBACK 0x97, a 3.1.1 one by
// disconnecting — says why in Health and its metrics, and recovers by
// itself once space is back. Everything it accepted is still there after a
// restart, in order.
func TestStorageFullRefusesAndRecovers(t *testing.T) {
	dir := testkit.SmallDisk(t, 4<<20)
	reg := prometheus.NewRegistry()
	tb := startBroker(t, Config{DataDir: dir, Metrics: reg})
	s := mint(t, tb, "demo")
	rs := subscribed(t, dialTCP(t, tb), 5, s)
	_ = rs.c.Close()
	testkit.WaitFor(t, 10*time.Second, "browser gone", func() bool { return tb.Clients() == 0 })

	name := topic.Events("demo", s.Channel)
	pad := strings.Repeat("p", 8<<10)
	ctx := context.Background()
	var accepted []string
	publish := func(i int) error {
		err := tb.Publish(ctx, name, []byte(strconv.Itoa(i)+" "+pad), PublishOptions{QoS: 1})
		if err == nil {
			accepted = append(accepted, strconv.Itoa(i))
		}
		return err
	}
	for i := range 5 {
		if err := publish(i); err != nil {
			t.Fatal(err)
		}
	}

	free := testkit.FillDisk(t, dir)
	next := 5
	var refused error
	for ; next < 1000 && refused == nil; next++ {
		refused = publish(next)
	}
	var ra interface{ RetryAfter() time.Duration }
	if !errors.Is(refused, ErrStorage) || !errors.As(refused, &ra) || ra.RetryAfter() <= 0 {
		t.Fatalf("publish on a full disk: %v, want ErrStorage with a RetryAfter", refused)
	}
	if err := tb.Health(); err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("Health on a full disk: %v", err)
	}
	if got := gaugeValue(t, reg, "herald_broker_storage_ok"); got != 0 {
		t.Fatalf("herald_broker_storage_ok = %v on a full disk", got)
	}
	start := time.Now()
	if err := publish(next); !errors.Is(err, ErrStorage) {
		t.Fatalf("publish while failing: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("a refusal took %v; it should not wait for the disk", d)
	}

	// MQTT 5 service: PUBACK 0x97. MQTT 3.1.1 service: disconnected, no PUBACK.
	svc := mustConnect(t, dialTCP(t, tb), "svc-full", "demo", demoKey)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pr, err := svc.Publish(pctx, &paho.Publish{Topic: name, QoS: 1, Payload: []byte("from mqtt 5")})
	if pr == nil || pr.ReasonCode != 0x97 {
		t.Fatalf("MQTT 5 publish on a full disk: %+v %v, want PUBACK 0x97", pr, err)
	}
	v3 := newRaw(dialTCP(t, tb))
	v3.send(t, rawConnect(4, "svc-full-v3", "demo", demoKey, true))
	v3.read(t)
	v3.send(t, rawPublishQoS1(4, name, 7, "from 3.1.1"))
	if err := v3.closed(2 * time.Second); err != nil {
		t.Fatalf("MQTT 3.1.1 publish on a full disk: %v", err)
	}

	free()
	testkit.WaitFor(t, 10*time.Second, "storage writing again", func() bool { return tb.Health() == nil })
	if got := gaugeValue(t, reg, "herald_broker_storage_ok"); got != 1 {
		t.Fatalf("herald_broker_storage_ok = %v after recovery", got)
	}
	for i := next + 1; i < next+6; i++ {
		if err := publish(i); err != nil {
			t.Fatalf("publish after recovery: %v", err)
		}
	}

	tb.stop()
	tb = startBroker(t, Config{DataDir: dir})
	rs = resumed(t, dialTCP(t, tb), 5, s)
	var got []string
	last := -1
	for len(got) < len(accepted) {
		p := rs.readPublish(t, 5)
		rs.puback(t, p.id)
		i, _ := strconv.Atoi(strings.TrimSuffix(p.payload, " "+pad))
		if i <= last {
			t.Fatalf("message %d after %d", i, last)
		}
		last = i
		if i != next-1 { // refused at its sync: it may or may not have been kept
			got = append(got, strconv.Itoa(i))
		}
	}
	if strings.Join(got, ",") != strings.Join(accepted, ",") {
		t.Fatalf("after restart: %v, want every accepted message %v", got, accepted)
	}
}

// gaugeValue reads a registered gauge.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, ok := testkit.Metric(t, reg, name, nil)
	if !ok {
		t.Fatalf("metric %s not registered", name)
	}
	return v
}

// rawPublishQoS1 builds a QoS 1 PUBLISH.
func rawPublishQoS1(version byte, name string, id uint16, payload string) []byte {
	body := mqttString(nil, name)
	body = append(body, byte(id>>8), byte(id))
	if version == 5 {
		body = append(body, 0)
	}
	return packet(0x32, append(body, payload...))
}
