package loadtest

import (
	"errors"
	"testing"
)

// TestConfigRefusesUnknownModes: a typo in a mode is an error, not a
// silent fallback to the default.
func TestConfigRefusesUnknownModes(t *testing.T) {
	replicas := []Replica{{Base: "http://127.0.0.1:8080", WS: "ws://127.0.0.1:8080/mqtt"}}
	tests := []struct {
		name string
		t    Target
		ok   bool
	}{
		{"defaults", Target{Name: "h", Kind: KindHerald, Replicas: replicas}, true},
		{"offline http", Target{Name: "h", Kind: KindHerald, Mint: MintOffline, Publish: PublishHTTP, Replicas: replicas}, true},
		{"bad kind", Target{Name: "h", Kind: "nats", Replicas: replicas}, false},
		{"bad mint", Target{Name: "h", Kind: KindHerald, Mint: "ofline", Replicas: replicas}, false},
		{"bad publish", Target{Name: "h", Kind: KindHerald, Publish: "amqp", Replicas: replicas}, false},
		{"plain broker over http", Target{Name: "m", Kind: KindMQTT, Publish: PublishHTTP, Replicas: replicas}, false},
	}
	for _, tt := range tests {
		_, err := Config{Targets: []Target{tt.t}}.withDefaults()
		if tt.ok && err != nil || !tt.ok && !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
