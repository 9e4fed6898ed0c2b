package mqttclient

import (
	"errors"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		raw, want string
		wantErr   bool
	}{
		{raw: "mqtt://broker", want: "mqtt://broker:1883"},
		{raw: "mqtts://b.example.com", want: "mqtts://b.example.com:8883"},
		{raw: "ws://127.0.0.1:9001/mqtt", want: "ws://127.0.0.1:9001/mqtt"},
		{raw: "wss://[::1]", want: "wss://[::1]:443"},
		{raw: "http://broker", wantErr: true},
		{raw: "mqtt://", wantErr: true},
		{raw: "mqtt://:1883", wantErr: true},
		{raw: "::", wantErr: true},
	}
	for _, tt := range tests {
		u, err := ParseURL(tt.raw)
		if tt.wantErr {
			if !errors.Is(err, ErrURL) {
				t.Errorf("ParseURL(%q): got %v, want ErrURL", tt.raw, err)
			}
			continue
		}
		if err != nil || u.String() != tt.want {
			t.Errorf("ParseURL(%q) = %v, %v; want %s", tt.raw, u, err, tt.want)
		}
	}
}

func TestBackoffFloor(t *testing.T) {
	b := Backoff(0)
	for attempt := range 10 {
		if d := b(attempt); d > MinReconnectDelay || d < 0 {
			t.Fatalf("Backoff(0)(%d) = %v, want within [0, %v]", attempt, d, MinReconnectDelay)
		}
	}
	if d := Backoff(time.Second)(20); d > time.Second {
		t.Fatalf("Backoff(1s)(20) = %v, want at most 1s", d)
	}
}
