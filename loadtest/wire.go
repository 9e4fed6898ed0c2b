package loadtest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The load generator speaks just enough MQTT 5 for a browser session and a
// service publisher: CONNECT, SUBSCRIBE, PUBLISH (QoS 0/1), PUBACK, PINGREQ
// and DISCONNECT out; CONNACK, SUBACK, PUBLISH, PUBACK, PINGRESP and
// DISCONNECT in. A general client (paho.golang) keeps several goroutines,
// channels and maps per connection; here a session is one goroutine and a
// few hundred bytes of state, which is what lets one worker process hold
// close to 20,000 sessions.

// MQTT control packet types (high nibble of the fixed header).
const (
	pktConnect    = 1
	pktConnack    = 2
	pktPublish    = 3
	pktPuback     = 4
	pktSubscribe  = 8
	pktSuback     = 9
	pktPingreq    = 12
	pktPingresp   = 13
	pktDisconnect = 14
)

// maxPacket bounds an inbound packet; anything larger is a protocol error
// for this tool (its payloads are tens of bytes).
const maxPacket = 256 << 10

// Errors from the packet reader.
var (
	errMalformed = errors.New("mqtt: malformed packet")
	errTooLarge  = errors.New("mqtt: packet too large")
)

// packet is one decoded inbound packet. Slices alias the reader's buffer and
// are valid until the next readPacket.
type packet struct {
	typ     byte
	flags   byte
	body    []byte
	topic   []byte // PUBLISH
	pid     uint16 // PUBLISH (QoS > 0), PUBACK, SUBACK
	payload []byte // PUBLISH
	reason  byte   // CONNACK, PUBACK, DISCONNECT; SUBACK: first reason code
	recvMax uint16 // CONNACK Receive Maximum (0: not sent)
}

// readPacket reads one packet from r into *buf (grown as needed) and
// decodes the parts the load generator uses.
func readPacket(r *bufio.Reader, buf *[]byte) (packet, error) {
	h, err := r.ReadByte()
	if err != nil {
		return packet{}, err
	}
	n, err := readVarint(r)
	if err != nil {
		return packet{}, err
	}
	if n > maxPacket {
		return packet{}, fmt.Errorf("%w: %d bytes", errTooLarge, n)
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		return packet{}, err
	}
	return decodePacket(h, b)
}

// decodePacket decodes the body b of a packet with fixed header byte h.
func decodePacket(h byte, b []byte) (packet, error) {
	p := packet{typ: h >> 4, flags: h & 0x0f, body: b}
	switch p.typ {
	case pktConnack:
		if len(b) < 2 {
			return p, fmt.Errorf("%w: short CONNACK", errMalformed)
		}
		p.reason = b[1]
		props, _, err := splitProps(b[2:])
		if err != nil {
			return p, err
		}
		err = walkProps(props, func(id byte, v []byte) {
			if id == 0x21 && len(v) == 2 {
				p.recvMax = binary.BigEndian.Uint16(v)
			}
		})
		return p, err
	case pktPublish:
		qos := (p.flags >> 1) & 3
		if qos > 2 {
			return p, fmt.Errorf("%w: PUBLISH QoS 3", errMalformed)
		}
		t, rest, err := readString(b)
		if err != nil {
			return p, err
		}
		p.topic = t
		if qos > 0 {
			if len(rest) < 2 {
				return p, fmt.Errorf("%w: PUBLISH without packet id", errMalformed)
			}
			p.pid = binary.BigEndian.Uint16(rest)
			rest = rest[2:]
		}
		_, rest, err = splitProps(rest)
		if err != nil {
			return p, err
		}
		p.payload = rest
		return p, nil
	case pktPuback, pktSuback:
		if len(b) < 2 {
			return p, fmt.Errorf("%w: short ack", errMalformed)
		}
		p.pid = binary.BigEndian.Uint16(b)
		rest := b[2:]
		if p.typ == pktPuback {
			if len(rest) > 0 {
				p.reason = rest[0]
			}
			return p, nil
		}
		_, codes, err := splitProps(rest)
		if err != nil {
			return p, err
		}
		if len(codes) == 0 {
			return p, fmt.Errorf("%w: SUBACK without reason codes", errMalformed)
		}
		p.reason = codes[0]
		return p, nil
	case pktDisconnect:
		if len(b) > 0 {
			p.reason = b[0]
		}
		return p, nil
	case pktPingresp:
		return p, nil
	default:
		return p, fmt.Errorf("%w: unexpected packet type %d", errMalformed, p.typ)
	}
}

func readVarint(r io.ByteReader) (int, error) {
	n, mult := 0, 1
	for i := 0; i < 4; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n += int(c&0x7f) * mult
		if c&0x80 == 0 {
			return n, nil
		}
		mult *= 128
	}
	return 0, fmt.Errorf("%w: remaining length over 4 bytes", errMalformed)
}

// varint decodes a variable byte integer at the start of b.
func varint(b []byte) (n, size int, err error) {
	mult := 1
	for i := 0; i < 4 && i < len(b); i++ {
		n += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return n, i + 1, nil
		}
		mult *= 128
	}
	return 0, 0, fmt.Errorf("%w: bad variable byte integer", errMalformed)
}

func readString(b []byte) (s, rest []byte, err error) {
	if len(b) < 2 {
		return nil, nil, fmt.Errorf("%w: short string", errMalformed)
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return nil, nil, fmt.Errorf("%w: string past end", errMalformed)
	}
	return b[2 : 2+n], b[2+n:], nil
}

// splitProps splits an MQTT 5 property block off the front of b.
func splitProps(b []byte) (props, rest []byte, err error) {
	if len(b) == 0 {
		return nil, nil, nil // MQTT 5 allows omitting empty properties at the end
	}
	n, size, err := varint(b)
	if err != nil {
		return nil, nil, err
	}
	if len(b) < size+n {
		return nil, nil, fmt.Errorf("%w: properties past end", errMalformed)
	}
	return b[size : size+n], b[size+n:], nil
}

// walkProps calls f for each property in props with its raw value.
func walkProps(props []byte, f func(id byte, v []byte)) error {
	for len(props) > 0 {
		id := props[0]
		props = props[1:]
		var n int
		switch id {
		case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A:
			n = 1
		case 0x13, 0x21, 0x22, 0x23:
			n = 2
		case 0x02, 0x11, 0x18, 0x27:
			n = 4
		case 0x0B:
			_, size, err := varint(props)
			if err != nil {
				return err
			}
			n = size
		case 0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F, 0x09, 0x16:
			if len(props) < 2 {
				return fmt.Errorf("%w: short property", errMalformed)
			}
			n = 2 + int(binary.BigEndian.Uint16(props))
		case 0x26:
			_, rest, err := readString(props)
			if err != nil {
				return err
			}
			_, rest, err = readString(rest)
			if err != nil {
				return err
			}
			n = len(props) - len(rest)
		default:
			return fmt.Errorf("%w: unknown property 0x%02x", errMalformed, id)
		}
		if len(props) < n {
			return fmt.Errorf("%w: property 0x%02x past end", errMalformed, id)
		}
		f(id, props[:n])
		props = props[n:]
	}
	return nil
}

// Encoders append one packet to dst and return it.

func appendVarint(dst []byte, n int) []byte {
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		dst = append(dst, c)
		if n == 0 {
			return dst
		}
	}
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// appendConnect encodes an MQTT 5 CONNECT with clean start and no session
// expiry, as a browser tab opening a fresh page does.
func appendConnect(dst []byte, clientID, user, pass string, keepAlive uint16) []byte {
	flags := byte(0x02)
	n := 10 + 1 + 2 + len(clientID)
	if user != "" {
		flags |= 0x80
		n += 2 + len(user)
	}
	if pass != "" {
		flags |= 0x40
		n += 2 + len(pass)
	}
	dst = append(dst, pktConnect<<4)
	dst = appendVarint(dst, n)
	dst = append(dst, 0, 4, 'M', 'Q', 'T', 'T', 5, flags)
	dst = binary.BigEndian.AppendUint16(dst, keepAlive)
	dst = append(dst, 0) // no properties
	dst = appendString(dst, clientID)
	if user != "" {
		dst = appendString(dst, user)
	}
	if pass != "" {
		dst = appendString(dst, pass)
	}
	return dst
}

func appendSubscribe(dst []byte, pid uint16, filter string, qos byte) []byte {
	dst = append(dst, pktSubscribe<<4|0x02)
	dst = appendVarint(dst, 2+1+2+len(filter)+1)
	dst = binary.BigEndian.AppendUint16(dst, pid)
	dst = append(dst, 0)
	dst = appendString(dst, filter)
	return append(dst, qos)
}

func appendPublish(dst []byte, topic string, qos byte, pid uint16, payload []byte) []byte {
	n := 2 + len(topic) + 1 + len(payload)
	if qos > 0 {
		n += 2
	}
	dst = append(dst, pktPublish<<4|qos<<1)
	dst = appendVarint(dst, n)
	dst = appendString(dst, topic)
	if qos > 0 {
		dst = binary.BigEndian.AppendUint16(dst, pid)
	}
	dst = append(dst, 0)
	return append(dst, payload...)
}

func appendPuback(dst []byte, pid uint16) []byte {
	dst = append(dst, pktPuback<<4, 2)
	return binary.BigEndian.AppendUint16(dst, pid)
}

var (
	pingreq    = []byte{pktPingreq << 4, 0}
	disconnect = []byte{pktDisconnect << 4, 0}
)
