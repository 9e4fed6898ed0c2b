package broker

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// An MQTT 5 QoS 1 publish that is refused always gets its PUBACK with a
// reason code, whatever makes the topic unacceptable: mochi's own topic
// name check ($SYS/…) drops such a publish without an answer, which leaves
// the client waiting for its acknowledgement forever.
func TestRefusedTopicGetsPuback(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	svc := mustConnect(t, dialTCP(t, tb), "svc-api", "demo", demoKey)
	browser := mustConnect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token)

	for _, tc := range []struct {
		who   string
		mc    *mqttClient
		topic string
	}{
		{"service", svc, "$SYS/broker/clients"},
		{"service", svc, "$sys/x"},
		{"service", svc, "$share/g/apps/demo/x"},
		{"service", svc, "apps/other/x"},
		{"browser", browser, "$SYS/broker/clients"},
		{"browser", browser, "apps/demo/channels/" + s.Channel + "/events"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		pr, err := tc.mc.Publish(ctx, &paho.Publish{Topic: tc.topic, QoS: 1, Payload: []byte("x")})
		cancel()
		if pr == nil || pr.ReasonCode < 0x80 {
			t.Errorf("%s publish to %q: got %+v, %v; want a PUBACK with a refusal code", tc.who, tc.topic, pr, err)
		}
	}
	// The connections are still usable afterwards.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := svc.Publish(ctx, &paho.Publish{Topic: "apps/demo/x", QoS: 1, Payload: []byte("ok")}); err != nil {
		t.Fatalf("publish after refusals: %v", err)
	}
}
