package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestOfflineDeliveryAcrossRestart: a browser with a persistent session
// subscribes QoS 1 and goes away; an event is posted; the gateway restarts;
// the browser comes back and gets the event exactly once.
func TestOfflineDeliveryAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, dir)
	s := g.newSession(t)
	mc := subscribedBrowser(t, s)
	if err := mc.c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	resp, body := postJSON(t, g.base+"/v1/events", testAPIKey, map[string]any{"v": 1, "type": "x.offline", "id": "evt_offline_1", "channel": s.Channel})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %d %s", resp.StatusCode, body)
	}
	if err := g.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	g2 := startGateway(t, dir)
	wsURL := "ws" + g2.base[len("http"):] + "/mqtt"
	mc2, ca, err := dialMQTT(t, wsURL, browserConnect(s, false))
	if err != nil {
		t.Fatalf("reconnect after restart: %v", err)
	}
	if !ca.SessionPresent {
		t.Fatal("session not present after restart")
	}
	seen := map[string]int{}
	deadline := time.After(3 * time.Second)
	for done := false; !done; {
		select {
		case p := <-mc2.msgs:
			var e struct{ ID string }
			_ = json.Unmarshal(p.Payload, &e)
			seen[e.ID]++
		case <-deadline:
			done = true
		}
	}
	if seen["evt_offline_1"] != 1 || len(seen) != 1 {
		t.Fatalf("after restart got %v, want evt_offline_1 exactly once", seen)
	}
}
