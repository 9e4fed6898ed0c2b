package loadtest

import (
	"bytes"
	"strconv"
)

// payloadMark starts the measurement record inside every payload: "LT1
// <seq> <send time, Unix ns>". It is found wherever it sits, so the same
// record works as a bare MQTT payload and inside a JSON envelope sent
// through POST /v1/events.
var payloadMark = []byte("LT1 ")

// appendRecord appends the measurement record for seq sent at unixNano.
func appendRecord(dst []byte, seq, unixNano int64) []byte {
	dst = append(dst, payloadMark...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, ' ')
	return strconv.AppendInt(dst, unixNano, 10)
}

// appendPayload appends a payload of at least size bytes: the record,
// padded with spaces.
func appendPayload(dst []byte, seq, unixNano int64, size int) []byte {
	start := len(dst)
	dst = appendRecord(dst, seq, unixNano)
	for len(dst)-start < size {
		dst = append(dst, ' ')
	}
	return dst
}

// parseRecord finds the record in p.
func parseRecord(p []byte) (seq, unixNano int64, ok bool) {
	i := bytes.Index(p, payloadMark)
	if i < 0 {
		return 0, 0, false
	}
	p = p[i+len(payloadMark):]
	seq, p, ok = parseInt(p)
	if !ok || len(p) == 0 || p[0] != ' ' {
		return 0, 0, false
	}
	unixNano, _, ok = parseInt(p[1:])
	return seq, unixNano, ok
}

func parseInt(p []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for ; i < len(p) && i < 19 && p[i] >= '0' && p[i] <= '9'; i++ {
		n = n*10 + int64(p[i]-'0')
	}
	return n, p[i:], i > 0
}
