package broker

import (
	"bytes"

	"github.com/mochi-mqtt/server/v2/packets"
)

// appendPublish appends pk encoded as a PUBLISH packet, byte for byte what
// mochi's encoder writes (pk.ProtocolVersion and pk.Mods set as
// WritePacket sets them). The common shapes — MQTT 3.1.1, or MQTT 5 with
// at most a payload format, a message expiry and subscription identifiers
// — are encoded here without allocating; anything else goes through
// mochi's encoder.
func appendPublish(dst []byte, pk *packets.Packet) ([]byte, error) {
	p := &pk.Properties
	if pk.ProtocolVersion == 5 && (p.ContentType != "" || p.ResponseTopic != "" || len(p.CorrelationData) > 0 ||
		len(p.User) > 0 || p.TopicAliasFlag || p.ReasonString != "") {
		return appendPublishMochi(dst, pk)
	}
	if pk.FixedHeader.Qos > 0 && pk.PacketID == 0 {
		return dst, packets.ErrProtocolViolationNoPacketID
	}
	var props [64]byte
	pr := props[:0]
	if pk.ProtocolVersion == 5 {
		if p.PayloadFormatFlag {
			pr = append(pr, packets.PropPayloadFormat, p.PayloadFormat)
		}
		if e := p.MessageExpiryInterval; e > 0 {
			pr = append(pr, packets.PropMessageExpiryInterval, byte(e>>24), byte(e>>16), byte(e>>8), byte(e))
		}
		for _, id := range p.SubscriptionIdentifier {
			if id > 0 {
				if len(pr)+6 > cap(pr) {
					return appendPublishMochi(dst, pk)
				}
				pr = appendVarint(append(pr, packets.PropSubscriptionIdentifier), id)
			}
		}
	}
	rem := 2 + len(pk.TopicName) + len(pk.Payload)
	if pk.FixedHeader.Qos > 0 {
		rem += 2
	}
	if pk.ProtocolVersion == 5 {
		rem += varintLen(len(pr)) + len(pr)
	}
	first := byte(packets.Publish<<4) | pk.FixedHeader.Qos<<1
	if pk.FixedHeader.Dup {
		first |= 0x08
	}
	if pk.FixedHeader.Retain {
		first |= 0x01
	}
	dst = appendVarint(append(dst, first), rem)
	dst = append(dst, byte(len(pk.TopicName)>>8), byte(len(pk.TopicName)))
	dst = append(dst, pk.TopicName...)
	if pk.FixedHeader.Qos > 0 {
		dst = append(dst, byte(pk.PacketID>>8), byte(pk.PacketID))
	}
	if pk.ProtocolVersion == 5 {
		dst = appendVarint(dst, len(pr))
		dst = append(dst, pr...)
	}
	return append(dst, pk.Payload...), nil
}

// appendPublishMochi encodes with mochi's own encoder.
func appendPublishMochi(dst []byte, pk *packets.Packet) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	err := pk.PublishEncode(buf)
	return buf.Bytes(), err
}

// appendVarint appends n as an MQTT variable byte integer.
func appendVarint(b []byte, n int) []byte {
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func varintLen(n int) int {
	k := 1
	for n >= 0x80 {
		n >>= 7
		k++
	}
	return k
}
