package broker

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/heraldgw/herald/topic"
)

// Raw-packet checks that the broker never sends a client what its protocol
// version does not define, and says what it supports. The broker offers QoS
// 0 and 1 (as AWS IoT Core does): QoS 2 is refused the way each version
// allows.

// rawConnectWill builds a CONNECT with a will of the given QoS.
func rawConnectWill(version byte, clientID, user, pass string, willQoS byte) []byte {
	body := mqttString(nil, "MQTT")
	body = append(body, version, 0xC2|0x04|willQoS<<3)
	body = binary.BigEndian.AppendUint16(body, 60)
	if version == 5 {
		body = append(body, 0)
	}
	body = mqttString(body, clientID)
	if version == 5 {
		body = append(body, 0) // will properties
	}
	body = mqttString(body, "apps/demo/events")
	body = mqttString(body, "gone")
	body = mqttString(body, user)
	body = mqttString(body, pass)
	return packet(0x10, body)
}

// rawPublish2 builds a QoS 2 PUBLISH.
func rawPublish2(version byte, name string, id uint16) []byte {
	body := mqttString(nil, name)
	body = binary.BigEndian.AppendUint16(body, id)
	if version == 5 {
		body = append(body, 0)
	}
	return packet(0x34, append(body, "x"...))
}

// endsSilently fails unless the server closes the connection without
// sending anything more.
func (s *rawSession) endsSilently(t *testing.T) {
	t.Helper()
	_ = s.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	h, body, err := readPacket(s.r)
	if err == nil {
		t.Fatalf("got packet %#x %x, want the connection closed without a packet", h, body)
	}
	if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
		t.Fatal("connection still open")
	}
}

// A 3.1.1 client publishing QoS 2 is disconnected (3.1.1 cannot refuse a
// publish otherwise); it is not answered with a PUBACK. An MQTT 5 client,
// told Maximum QoS 1 in CONNACK, gets DISCONNECT 0x9B.
func TestQoS2PublishRefused(t *testing.T) {
	tb := startBroker(t, Config{})
	name := "apps/demo/channels/c/events"

	v3 := newRaw(dialTCP(t, tb))
	v3.send(t, rawConnect(4, "svc-q2", "demo", demoKey, true))
	v3.read(t)
	v3.send(t, rawPublish2(4, name, 1))
	v3.endsSilently(t)

	v5 := newRaw(dialTCP(t, tb))
	v5.send(t, rawConnect(5, "svc-q2-5", "demo", demoKey, true))
	v5.read(t)
	v5.send(t, rawPublish2(5, name, 1))
	h, body := v5.read(t)
	if h != 0xE0 || len(body) < 1 || body[0] != 0x9B {
		t.Fatalf("MQTT 5 QoS 2 publish: got %#x %x, want DISCONNECT 0x9B", h, body)
	}
}

// A QoS 2 will: MQTT 5 gets CONNACK 0x9B; 3.1.1 has no return code for it,
// so the connection is closed without a CONNACK (MQTT-3.2.2-6).
func TestQoS2WillRefused(t *testing.T) {
	tb := startBroker(t, Config{})
	v5 := newRaw(dialTCP(t, tb))
	v5.send(t, rawConnectWill(5, "svc-w5", "demo", demoKey, 2))
	if h, body := v5.read(t); h != 0x20 || body[1] != 0x9B {
		t.Fatalf("MQTT 5 QoS 2 will: CONNACK %#x %x, want reason 0x9B", h, body)
	}
	v3 := newRaw(dialTCP(t, tb))
	v3.send(t, rawConnectWill(4, "svc-w3", "demo", demoKey, 2))
	v3.endsSilently(t)
	// A QoS 1 will is fine.
	ok := newRaw(dialTCP(t, tb))
	ok.send(t, rawConnectWill(4, "svc-w1", "demo", demoKey, 1))
	if h, body := ok.read(t); h != 0x20 || body[1] != 0 {
		t.Fatalf("QoS 1 will: CONNACK %#x %x", h, body)
	}
}

// 3.1.1 has no server DISCONNECT: a 3.1.1 client taken over by a new
// connection, or refused a publish, is just closed.
func TestNoDisconnectPacketToMQTT311(t *testing.T) {
	tb := startBroker(t, Config{})
	s := mint(t, tb, "demo")
	first := newRaw(dialTCP(t, tb))
	first.send(t, rawConnect(4, s.Channel, "demo", s.Token, true))
	first.read(t)
	second := newRaw(dialTCP(t, tb))
	second.send(t, rawConnect(4, s.Channel, "demo", s.Token, true))
	second.read(t)
	first.endsSilently(t)

	// A browser may not publish: a 3.1.1 browser is closed, silently.
	second.send(t, rawPublishQoS1(4, topic.Events("demo", s.Channel), 3, "x"))
	second.endsSilently(t)
}

// PUBACK to an MQTT 5 QoS 1 publish: reason Success (0x00, here left out as
// allowed), not 0x01, and none of the publisher's properties echoed.
func TestPubackToMQTT5(t *testing.T) {
	tb := startBroker(t, Config{})
	svc := newRaw(dialTCP(t, tb))
	svc.send(t, rawConnect(5, "svc-ack", "demo", demoKey, true))
	svc.read(t)
	body := mqttString(nil, "apps/demo/channels/c/events")
	body = append(body, 0, 9)
	props := append([]byte{0x26}, mqttString(mqttString(nil, "k"), "v")...) // user property
	body = append(append(body, byte(len(props))), props...)
	svc.send(t, packet(0x32, append(body, "x"...)))
	h, ack := svc.read(t)
	if h != 0x40 || !(bytes.Equal(ack, []byte{0, 9}) || bytes.Equal(ack, []byte{0, 9, 0}) || bytes.Equal(ack, []byte{0, 9, 0, 0})) {
		t.Fatalf("PUBACK %#x %x, want packet id 9, reason 0x00, no properties", h, ack)
	}
}

// CONNACK tells an MQTT 5 client that shared subscriptions are not
// available ($share filters are refused).
func TestConnackAnnouncesNoSharedSubscriptions(t *testing.T) {
	tb := startBroker(t, Config{})
	c := newRaw(dialTCP(t, tb))
	c.send(t, rawConnect(5, "svc-ssa", "demo", demoKey, true))
	h, body := c.read(t)
	if h != 0x20 || body[1] != 0 {
		t.Fatalf("CONNACK %#x %x", h, body)
	}
	if !hasProperty(body[2:], 0x2A, 0) {
		t.Fatalf("CONNACK properties %x lack Shared Subscription Available = 0", body[2:])
	}
	// A client that subscribes to a shared filter anyway is refused.
	s := mint(t, tb, "demo")
	b := newRaw(dialTCP(t, tb))
	b.send(t, rawConnect(5, s.Channel, "demo", s.Token, true))
	b.read(t)
	b.send(t, rawSubscribe(5, 1, "$share/g/apps/demo/channels/"+s.Channel+"/#"))
	if h, body := b.read(t); h != 0x90 || body[len(body)-1] != 0x87 {
		t.Fatalf("SUBACK %#x %x, want 0x87 for a shared subscription", h, body)
	}
}

// hasProperty reports whether the encoded MQTT 5 property list (length
// first) has the one-byte property id with value v.
func hasProperty(p []byte, id, v byte) bool {
	n, used := 0, 0
	for mult := 1; used < len(p); mult *= 128 {
		c := p[used]
		used++
		n += int(c&0x7f) * mult
		if c&0x80 == 0 {
			break
		}
	}
	props := p[used:min(len(p), used+n)]
	for i := 0; i < len(props); {
		pid := props[i]
		i++
		switch pid {
		case id:
			return i < len(props) && props[i] == v
		case 0x24, 0x25, 0x28, 0x29, 0x2A: // one byte
			i++
		case 0x13, 0x21, 0x22: // two bytes
			i += 2
		case 0x11, 0x27: // four bytes
			i += 4
		case 0x12, 0x1A, 0x1C, 0x1F: // string
			i += 2 + int(binary.BigEndian.Uint16(props[i:]))
		case 0x26: // string pair
			k := int(binary.BigEndian.Uint16(props[i:]))
			i += 2 + k
			i += 2 + int(binary.BigEndian.Uint16(props[i:]))
		default:
			return false
		}
	}
	return false
}
