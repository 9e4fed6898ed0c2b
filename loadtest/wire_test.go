package loadtest

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

func TestPacketRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		raw     []byte
		typ     byte
		topic   string
		pid     uint16
		payload string
		reason  byte
		recvMax uint16
		wantErr error
	}{
		{name: "publish qos0", raw: appendPublish(nil, "apps/a/channels/c/events", 0, 0, []byte("hello")),
			typ: pktPublish, topic: "apps/a/channels/c/events", payload: "hello"},
		{name: "publish qos1", raw: appendPublish(nil, "t", 1, 7, []byte("x")),
			typ: pktPublish, topic: "t", pid: 7, payload: "x"},
		{name: "puback", raw: appendPuback(nil, 9), typ: pktPuback, pid: 9},
		{name: "connack with receive maximum", raw: []byte{0x20, 6, 0, 0, 3, 0x21, 0, 32}, typ: pktConnack, recvMax: 32},
		{name: "connack refused", raw: []byte{0x20, 3, 0, 0x86, 0}, typ: pktConnack, reason: 0x86},
		{name: "suback refused", raw: []byte{0x90, 4, 0, 1, 0, 0x87}, typ: pktSuback, pid: 1, reason: 0x87},
		{name: "pingresp", raw: []byte{0xd0, 0}, typ: pktPingresp},
		{name: "disconnect", raw: []byte{0xe0, 1, 0x8b}, typ: pktDisconnect, reason: 0x8b},
		{name: "unknown property", raw: []byte{0x20, 5, 0, 0, 2, 0x7f, 0}, wantErr: errMalformed},
		{name: "remaining length too long", raw: []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, wantErr: errMalformed},
		{name: "string past end", raw: []byte{0x30, 3, 0, 9, 'a'}, wantErr: errMalformed},
		{name: "unexpected type", raw: []byte{0x10, 0}, wantErr: errMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf []byte
			p, err := readPacket(bufio.NewReader(bytes.NewReader(tc.raw)), &buf)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.typ != tc.typ || string(p.topic) != tc.topic || p.pid != tc.pid || string(p.payload) != tc.payload ||
				p.reason != tc.reason || p.recvMax != tc.recvMax {
				t.Errorf("got %+v, want type %d topic %q pid %d payload %q reason %x recvMax %d",
					p, tc.typ, tc.topic, tc.pid, tc.payload, tc.reason, tc.recvMax)
			}
		})
	}
}

func TestConnectEncoding(t *testing.T) {
	got := appendConnect(nil, "cid", "app", "tok", 60)
	want := []byte{0x10, 26, 0, 4, 'M', 'Q', 'T', 'T', 5, 0xc2, 0, 60, 0,
		0, 3, 'c', 'i', 'd', 0, 3, 'a', 'p', 'p', 0, 3, 't', 'o', 'k'}
	if !bytes.Equal(got, want) {
		t.Errorf("got % x, want % x", got, want)
	}
	if got, want := appendVarint(nil, 321), []byte{0xc1, 0x02}; !bytes.Equal(got, want) {
		t.Errorf("varint 321: got % x, want % x", got, want)
	}
}

func TestPayloadRecord(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		seq, ts int64
		ok      bool
	}{
		{"padded", appendPayload(nil, 42, 1700000000123456789, 64), 42, 1700000000123456789, true},
		{"inside json", []byte(`{"data":{"lt":"LT1 3 99"}}`), 3, 99, true},
		{"no record", []byte("hello"), 0, 0, false},
		{"truncated", []byte("LT1 5"), 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq, ts, ok := parseRecord(tc.payload)
			if seq != tc.seq || ts != tc.ts || ok != tc.ok {
				t.Errorf("got %d %d %v, want %d %d %v", seq, ts, ok, tc.seq, tc.ts, tc.ok)
			}
		})
	}
	if got := len(appendPayload(nil, 1, 1, 64)); got != 64 {
		t.Errorf("payload length %d, want 64", got)
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080", true},
		{"ws://127.5.6.7:1/mqtt", true},
		{"ws://[::1]:9001", true},
		{"http://localhost:8080", true},
		{"http://10.0.0.1:8080", false},
		{"ws://example.com/mqtt", false},
		{"http://[::2]:1", false},
	}
	for _, tc := range tests {
		err := CheckLoopback(tc.url)
		if got := err == nil; got != tc.ok {
			t.Errorf("%s: got %v, want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrNotLoopback) {
			t.Errorf("%s: got %v, want ErrNotLoopback", tc.url, err)
		}
	}
}

// FuzzReadPacket feeds arbitrary bytes, as a hostile or broken broker
// could send, to the packet reader: it must return packets or errors,
// never panic or read past its input.
func FuzzReadPacket(f *testing.F) {
	f.Add(appendPublish(nil, "a/b", 1, 3, []byte("LT1 1 2")))
	f.Add([]byte{0x20, 6, 0, 0, 3, 0x21, 0, 32})
	f.Add([]byte{0x90, 4, 0, 1, 0, 0x87})
	f.Add([]byte{0x20, 9, 0, 0, 6, 0x26, 0, 1, 'k', 0, 1, 'v'})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var buf []byte
		r := bufio.NewReader(bytes.NewReader(b))
		for i := 0; i < 64; i++ {
			p, err := readPacket(r, &buf)
			if err != nil {
				return
			}
			if p.typ == pktPublish {
				_, _, _ = parseRecord(p.payload)
			}
		}
	})
}
