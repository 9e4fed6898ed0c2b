package broker

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/internal/testkit"
)

// syncBuffer collects JSON log lines from the broker's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(s.b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// TestConnectLoggedAtDebug: a successful connect and a clean disconnect
// are one DEBUG line each, so an INFO log stays quiet however many
// browsers come and go.
func TestConnectLoggedAtDebug(t *testing.T) {
	var logs syncBuffer
	tb := startBroker(t, Config{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	s := mint(t, tb, "demo")
	mc := mustConnect(t, dialTCP(t, tb), s.Channel, "demo", s.Token)
	testkit.WaitFor(t, 10*time.Second, "connect logged", func() bool { return len(logs.lines("mqtt connect")) == 1 })
	if err := mc.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "disconnect logged", func() bool { return len(logs.lines("mqtt disconnect")) == 1 })
	c, d := logs.lines("mqtt connect")[0], logs.lines("mqtt disconnect")[0]
	if c["level"] != "DEBUG" || c["client"] != s.Channel || c["app"] != "demo" {
		t.Errorf("connect line %v", c)
	}
	if d["level"] != "DEBUG" || d["reason"] != "client" {
		t.Errorf("disconnect line %v", d)
	}
}
