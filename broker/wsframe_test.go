package broker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// clientFrame builds a masked client frame.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

// frameLog records what a wsReader reports.
type frameLog struct {
	data  []byte
	ctrls []string
}

type frameSink struct{ l *frameLog }

func (s frameSink) data(p []byte) { s.l.data = append(s.l.data, p...) }
func (s frameSink) control(op byte, payload []byte) {
	s.l.ctrls = append(s.l.ctrls, fmt.Sprintf("%x:%s", op, payload))
}

func TestWSReader(t *testing.T) {
	big := bytes.Repeat([]byte("mqtt"), 20000) // 80,000 bytes: 64-bit length
	mid := bytes.Repeat([]byte{7}, 300)        // 16-bit length
	tests := []struct {
		name      string
		stream    []byte
		max       int64
		wantData  []byte
		wantCtrls []string
		wantCode  uint16 // 0: no error
	}{
		{name: "one binary frame", stream: clientFrame(true, wsOpBinary, []byte{0x10, 0x02, 0, 0}), wantData: []byte{0x10, 0x02, 0, 0}},
		{name: "16-bit length", stream: clientFrame(true, wsOpBinary, mid), wantData: mid},
		{name: "64-bit length", stream: clientFrame(true, wsOpBinary, big), wantData: big},
		{name: "fragmented with a ping inside", stream: bytes.Join([][]byte{
			clientFrame(false, wsOpBinary, []byte("ab")),
			clientFrame(true, wsOpPing, []byte("hi")),
			clientFrame(true, wsOpContinuation, []byte("cd")),
		}, nil), wantData: []byte("abcd"), wantCtrls: []string{"9:hi"}},
		{name: "empty frames", stream: append(clientFrame(true, wsOpBinary, nil), clientFrame(true, wsOpPong, nil)...), wantCtrls: []string{"a:"}},
		{name: "close with status", stream: clientFrame(true, wsOpClose, []byte{0x03, 0xe8}), wantCtrls: []string{"8:\x03\xe8"}},
		{name: "text frame", stream: clientFrame(true, wsOpText, []byte("hi")), wantCode: wsCloseUnsupported},
		{name: "unmasked", stream: []byte{0x82, 0x01, 0x00}, wantCode: wsCloseProtocol},
		{name: "reserved bit", stream: append([]byte{0xC2}, clientFrame(true, wsOpBinary, []byte{1})[1:]...), wantCode: wsCloseProtocol},
		{name: "unknown opcode", stream: clientFrame(true, 0x3, nil), wantCode: wsCloseProtocol},
		{name: "continuation first", stream: clientFrame(true, wsOpContinuation, []byte{1}), wantCode: wsCloseProtocol},
		{name: "new message inside fragmented", stream: append(clientFrame(false, wsOpBinary, []byte{1}), clientFrame(true, wsOpBinary, []byte{2})...), wantData: []byte{1}, wantCode: wsCloseProtocol},
		{name: "fragmented ping", stream: clientFrame(false, wsOpPing, nil), wantCode: wsCloseProtocol},
		{name: "oversize ping", stream: clientFrame(true, wsOpPing, bytes.Repeat([]byte{1}, 126)), wantCode: wsCloseProtocol},
		{name: "one-byte close", stream: clientFrame(true, wsOpClose, []byte{1}), wantCode: wsCloseProtocol},
		{name: "top length bit", stream: []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, wantCode: wsCloseProtocol},
		{name: "message over max", max: 100, stream: append(clientFrame(false, wsOpBinary, mid[:60]), clientFrame(true, wsOpContinuation, mid[:60])...), wantData: mid[:60], wantCode: wsCloseTooBig},
	}
	for _, tt := range tests {
		// Every split of the stream into two chunks decodes the same: the
		// socket may cut anywhere.
		for _, step := range []int{0, 1, 2, 3, 7, 13} {
			var l frameLog
			r := wsReader{max: tt.max}
			stream := bytes.Clone(tt.stream)
			var err error
			if step == 0 {
				err = r.feed(stream, frameSink{&l})
			} else {
				for i := 0; i < len(stream) && err == nil; i += step {
					err = r.feed(stream[i:min(i+step, len(stream))], frameSink{&l})
				}
			}
			var pe *wsProtocolError
			var gotCode uint16
			if errors.As(err, &pe) {
				gotCode = pe.Code
			} else if err != nil {
				t.Fatalf("%s (step %d): error %v is not a protocol error", tt.name, step, err)
			}
			if gotCode != tt.wantCode {
				t.Errorf("%s (step %d): close code %d, want %d (%v)", tt.name, step, gotCode, tt.wantCode, err)
			}
			if !bytes.Equal(l.data, tt.wantData) {
				t.Errorf("%s (step %d): data %d bytes, want %d", tt.name, step, len(l.data), len(tt.wantData))
			}
			if tt.wantCode == 0 && len(l.ctrls) != len(tt.wantCtrls) {
				t.Errorf("%s (step %d): controls %q, want %q", tt.name, step, l.ctrls, tt.wantCtrls)
			}
		}
	}
}

func TestAppendWSHeader(t *testing.T) {
	tests := []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x82, 0}},
		{125, []byte{0x82, 125}},
		{126, []byte{0x82, 126, 0, 126}},
		{65535, []byte{0x82, 126, 0xff, 0xff}},
		{65536, []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	}
	for _, tt := range tests {
		if got := appendWSHeader(nil, wsOpBinary, tt.n); !bytes.Equal(got, tt.want) {
			t.Errorf("appendWSHeader(%d) = %x, want %x", tt.n, got, tt.want)
		}
	}
}

// FuzzWSReader feeds arbitrary client bytes in arbitrary chunks: the
// reader never panics, never reports more payload than it was given and
// stops at the first error.
func FuzzWSReader(f *testing.F) {
	f.Add(clientFrame(true, wsOpBinary, []byte{0x10, 0x02, 0, 0}), uint8(3))
	f.Add(append(clientFrame(false, wsOpBinary, []byte("ab")), clientFrame(true, wsOpContinuation, []byte("cd"))...), uint8(1))
	f.Add(clientFrame(true, wsOpPing, []byte("x")), uint8(0))
	f.Add([]byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		var l frameLog
		r := wsReader{max: 1 << 20}
		total := len(stream)
		s := int(step)
		if s == 0 {
			s = len(stream) + 1
		}
		for i := 0; i < len(stream); i += s {
			if err := r.feed(stream[i:min(i+s, len(stream))], frameSink{&l}); err != nil {
				break
			}
		}
		if len(l.data) > total {
			t.Fatalf("decoded %d payload bytes from %d input bytes", len(l.data), total)
		}
	})
}
