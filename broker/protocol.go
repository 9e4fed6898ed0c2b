package broker

import (
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// errQoS2 ends a connection that published QoS 2. It wraps
// ErrRejectPacket, the only error mochi heeds from OnPacketRead: the read
// loop ends with it.
var errQoS2 = fmt.Errorf("mqtt: QoS 2 is not supported: %w", packets.ErrRejectPacket)

// protocolHook corrects what mochi would send a client that the client's
// protocol version does not define, and announces what the broker does not
// support. The broker offers QoS 0 and 1, as AWS IoT Core does.
//
// Each correction, with the bytes mochi 2.7.9 sends without it:
//
//   - a QoS 2 PUBLISH from a 3.1.1 client was acknowledged with a PUBACK
//     (40 02 00 01): mochi lowers the QoS to the server maximum before
//     acknowledging. Now the connection is closed (3.1.1 has no negative
//     acknowledgement); an MQTT 5 client gets DISCONNECT 0x9B, as its
//     CONNACK said Maximum QoS 1.
//   - a QoS 2 will from a 3.1.1 client got CONNACK return code 155
//     (20 02 00 9b), a 5.0 reason code: any such CONNACK to a 3.1.1 client
//     is not sent and the connection is closed (MQTT-3.2.2-6).
//   - a 3.1.1 client got a DISCONNECT (e0 00) on session take-over or a
//     refused publish: 3.1.1 has no server DISCONNECT, it is not sent.
//   - the PUBACK to an MQTT 5 QoS 1 publish carried reason 0x01 (granted
//     QoS 1, a SUBACK code) and echoed the publisher's properties
//     (40 0b 00 09 01 07 26 00 01 6b 00 01 76): now 0x00 and no properties
//     (mochi's NoInheritedPropertiesOnAck, set with the capabilities).
//   - CONNACK did not say Shared Subscription Available = 0 although
//     "$share/…" filters are refused: it says so now.
//
// A packet is suppressed by giving it a maximum size of one byte: mochi
// then refuses to write it (ErrPacketTooLarge) and carries on as if it had.
type protocolHook struct {
	mqtt.HookBase
	srv *mqtt.Server
}

var _ mqtt.Hook = (*protocolHook)(nil)

func (h *protocolHook) ID() string { return "herald-protocol" }

func (h *protocolHook) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnPacketEncode
}

// OnPacketRead refuses a QoS 2 PUBLISH before mochi lowers its QoS.
func (h *protocolHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos < 2 {
		return pk, nil
	}
	if cl.Properties.ProtocolVersion == 5 {
		_ = h.srv.DisconnectClient(cl, packets.ErrQosNotSupported)
	}
	return pk, errQoS2
}

// OnPacketEncode fixes or suppresses outgoing packets (see protocolHook).
func (h *protocolHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	v5 := cl.Properties.ProtocolVersion == 5
	switch pk.FixedHeader.Type {
	case packets.Connack:
		switch {
		case !v5 && pk.ReasonCode > v3NotAuthorized.Code:
			pk.Mods.MaxSize = 1
		case v5 && pk.ReasonCode < packets.ErrUnspecifiedError.Code:
			pk.Properties.SharedSubAvailable, pk.Properties.SharedSubAvailableFlag = 0, true
		}
	case packets.Disconnect:
		if !v5 {
			pk.Mods.MaxSize = 1
		}
	case packets.Puback:
		if pk.ReasonCode == packets.CodeGrantedQos1.Code {
			pk.ReasonCode = packets.CodeSuccess.Code
		}
	}
	return pk
}
