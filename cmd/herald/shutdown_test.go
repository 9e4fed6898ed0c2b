package main

import (
	"encoding/json"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

// TestSIGTERMWithClientsConnected: the real binary, with a browser connected
// over /mqtt, exits on SIGTERM within the documented 10 s, tells the MQTT 5
// client the server is shutting down (0x8B), and keeps the client's
// persistent session: after a restart on the same data dir the session is
// present and an event posted before the stop is delivered.
func TestSIGTERMWithClientsConnected(t *testing.T) {
	dir := t.TempDir()
	opts := childOpts{dataDir: dir, localawsAddr: testkit.FreeAddr(t), mqttAddr: testkit.FreeAddr(t)}
	c := startChild(t, "gateway", opts)
	g := &testGateway{base: c.base}
	s := g.newSession(t)

	mc := subscribedBrowser(t, s)

	start := time.Now()
	c.kill(syscall.SIGTERM)
	took := time.Since(start)
	if took > 10*time.Second {
		t.Errorf("exit after SIGTERM took %v, want at most 10s", took)
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	select {
	case rc := <-mc.disconnects:
		if rc != 0x8B {
			t.Errorf("DISCONNECT reason 0x%02X, want 0x8B (server shutting down)", rc)
		}
	case <-time.After(2 * time.Second):
		t.Error("no DISCONNECT from the server before it exited")
	}

	c2 := startChild(t, "gateway-again", opts)
	resp, body := postJSON(t, c2.base+"/v1/events", testAPIKey, map[string]any{"v": 1, "type": "x.after", "id": "evt_after_restart", "channel": s.Channel})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post after restart: %d %s", resp.StatusCode, body)
	}
	mc2, ca, err := dialMQTT(t, "ws"+c2.base[len("http"):]+"/mqtt", browserConnect(s, false))
	if err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	if !ca.SessionPresent {
		t.Fatal("persistent session lost across SIGTERM")
	}
	var e struct{ ID string }
	_ = json.Unmarshal(mc2.next(t, 5*time.Second).Payload, &e)
	if e.ID != "evt_after_restart" {
		t.Fatalf("got event %q, want evt_after_restart", e.ID)
	}
}
