package sqs

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"sort"
	"strings"
)

// AttributeValue is one message attribute as it travels on the wire (JSON
// member names match the AWS JSON protocol).
type AttributeValue struct {
	DataType         string   `json:"DataType"`
	StringValue      *string  `json:"StringValue,omitempty"`
	BinaryValue      []byte   `json:"BinaryValue,omitempty"`
	StringListValues []string `json:"StringListValues,omitempty"`
	BinaryListValues [][]byte `json:"BinaryListValues,omitempty"`
}

// storedMessage is the immutable part of a message, written once to bbolt.
type storedMessage struct {
	ID       string                    `json:"id"`
	Body     string                    `json:"body"`
	Attrs    map[string]AttributeValue `json:"attrs,omitempty"`
	SysAttrs map[string]AttributeValue `json:"sys,omitempty"`
	SentMs   int64                     `json:"sent"`
	SenderID string                    `json:"sender,omitempty"`
	MD5Body  string                    `json:"md5"`
}

// message is the in-memory index entry of one message. Everything but rec
// is guarded by the owning queue's mutex.
type message struct {
	seq          uint64
	rec          *storedMessage
	visibleAt    int64 // unix nanoseconds; the message is receivable when now >= visibleAt
	receiveCount uint32
	firstRecvMs  int64
	nonce        uint64 // changes on every receive; part of the receipt handle
	heapIdx      int
	prev, next   *message // age list, oldest first, for retention expiry
}

// state is the mutable part of a message as persisted (28 bytes).
func (m *message) encodeState() []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint64(b[0:], uint64(m.visibleAt))
	binary.BigEndian.PutUint32(b[8:], m.receiveCount)
	binary.BigEndian.PutUint64(b[12:], uint64(m.firstRecvMs))
	binary.BigEndian.PutUint64(b[20:], m.nonce)
	return b
}

func (m *message) decodeState(b []byte) bool {
	if len(b) != 28 {
		return false
	}
	m.visibleAt = int64(binary.BigEndian.Uint64(b[0:]))
	m.receiveCount = binary.BigEndian.Uint32(b[8:])
	m.firstRecvMs = int64(binary.BigEndian.Uint64(b[12:]))
	m.nonce = binary.BigEndian.Uint64(b[20:])
	return true
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// md5OfAttributes computes MD5OfMessageAttributes the way SQS does: for each
// attribute in name order, the 4-byte big-endian length and bytes of the
// name, the same for the data type, one transport byte (1 string, 2 binary,
// 3 string list, 4 binary list), then the length-prefixed value(s). It
// returns "" for no attributes, where SQS omits the field.
func md5OfAttributes(attrs map[string]AttributeValue) string {
	if len(attrs) == 0 {
		return ""
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf []byte
	putBytes := func(b []byte) {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
		buf = append(buf, b...)
	}
	for _, n := range names {
		v := attrs[n]
		putBytes([]byte(n))
		putBytes([]byte(v.DataType))
		switch {
		case v.StringValue != nil:
			buf = append(buf, 1)
			putBytes([]byte(*v.StringValue))
		case v.BinaryValue != nil:
			buf = append(buf, 2)
			putBytes(v.BinaryValue)
		case len(v.StringListValues) > 0:
			buf = append(buf, 3)
			for _, s := range v.StringListValues {
				putBytes([]byte(s))
			}
		case len(v.BinaryListValues) > 0:
			buf = append(buf, 4)
			for _, s := range v.BinaryListValues {
				putBytes(s)
			}
		}
	}
	return md5Hex(buf)
}

// baseType is the data type without its custom label ("Number.int" -> "Number").
func baseType(dataType string) string {
	t, _, _ := strings.Cut(dataType, ".")
	return t
}

// validBodyChars reports whether s only holds characters SQS accepts:
// #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
func validBodyChars(s string) bool {
	for _, r := range s {
		switch {
		case r == 0x9 || r == 0xA || r == 0xD:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}
