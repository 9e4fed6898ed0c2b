package broker

import (
	"log/slog"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/internal/testkit"
)

// TestConnectLoggedAtDebug: a successful connect and a clean disconnect
// are one DEBUG line each, so an INFO log stays quiet however many
// browsers come and go.
func TestConnectLoggedAtDebug(t *testing.T) {
	var logs testkit.Logs
	tb := startBroker(t, Config{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	s := mint(t, tb, "demo")
	mc := mustConnect(t, dialTCP(t, tb), s.Channel, "demo", s.Token)
	testkit.WaitFor(t, 10*time.Second, "connect logged", func() bool { return len(logs.Msg("mqtt connect")) == 1 })
	if err := mc.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "disconnect logged", func() bool { return len(logs.Msg("mqtt disconnect")) == 1 })
	c, d := logs.Msg("mqtt connect")[0], logs.Msg("mqtt disconnect")[0]
	if c["level"] != "DEBUG" || c["client"] != s.Channel || c["app"] != "demo" {
		t.Errorf("connect line %v", c)
	}
	if d["level"] != "DEBUG" || d["reason"] != "client" {
		t.Errorf("disconnect line %v", d)
	}
}
