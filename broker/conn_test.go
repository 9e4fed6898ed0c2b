package broker

import (
	"errors"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestFramer(t *testing.T) {
	connect5 := rawConnect(5, "c", "u", "p", true)
	connect4 := rawConnect(4, "c", "u", "p", true)
	tests := []struct {
		name        string
		max         int
		in          []byte
		wantErr     error
		wantVersion byte
	}{
		{"v5 connect", 1024, connect5, nil, 5},
		{"v4 connect then ping", 1024, append(append([]byte{}, connect4...), 0xc0, 0x00), nil, 4},
		{"too large", 100, append([]byte{0x30}, remLen(200)...), packets.ErrPacketTooLarge, 0},
		{"exactly max", 4, []byte{0x30, 0x02, 0x00, 0x00}, nil, 0},
		{"one over max", 3, []byte{0x30, 0x02, 0x00, 0x00}, packets.ErrPacketTooLarge, 0},
		{"five length bytes", 0, []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x01}, errMalformedLength, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := framer{max: tt.max}
			err := f.feed(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("feed: %v, want %v", err, tt.wantErr)
			}
			if err == nil && f.version != tt.wantVersion {
				t.Fatalf("version = %d, want %d", f.version, tt.wantVersion)
			}
		})
	}
}

// FuzzFramer checks that the framing follows a byte stream the same way
// however it is split into reads, and never panics.
func FuzzFramer(f *testing.F) {
	f.Add(rawConnect(5, "client", "user", "pass", true), 3)
	f.Add(rawConnect(4, "client", "user", "pass", false), 0)
	f.Add(append(rawConnect(5, "c", "u", "p", true), rawSubscribe(5, 1, "a/#")...), 17)
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, 2)
	f.Add([]byte{0x30, 0x80, 0x80, 0x04}, 1)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		whole := framer{max: 4096}
		errWhole := whole.feed(data)
		if split < 0 {
			split = -split
		}
		if len(data) > 0 {
			split %= len(data) + 1
		} else {
			split = 0
		}
		parts := framer{max: 4096}
		errParts := parts.feed(data[:split])
		if errParts == nil {
			errParts = parts.feed(data[split:])
		}
		if !errors.Is(errParts, errWhole) && (errParts == nil) != (errWhole == nil) {
			t.Fatalf("whole: %v, split at %d: %v", errWhole, split, errParts)
		}
		if errWhole == nil && (whole.version != parts.version || whole.packets != parts.packets) {
			t.Fatalf("whole: v%d %d packets; split: v%d %d packets", whole.version, whole.packets, parts.version, parts.packets)
		}
	})
}
