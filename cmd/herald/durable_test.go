package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// offlineBrowser creates a session on c, connects it with a persistent
// session, subscribes to its channel and goes away.
func offlineBrowser(t *testing.T, c *child) session {
	t.Helper()
	g := &gateway{base: c.base}
	s := g.newSession(t)
	mc, _, err := dialMQTT(t, wsOf(c.base), browserConnect(s, true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.Topic, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := mc.c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	return s
}

func wsOf(base string) string { return "ws" + base[len("http"):] + "/mqtt" }

// receiveIDs collects the ids of the events mc receives until none has
// come for quiet.
func receiveIDs(mc *mqttClient, quiet time.Duration) []string {
	var ids []string
	for {
		select {
		case p := <-mc.msgs:
			var e struct{ ID string }
			_ = json.Unmarshal(p.Payload, &e)
			ids = append(ids, e.ID)
		case <-time.After(quiet):
			return ids
		}
	}
}

// An event answered 202 is on disk: the process killed with SIGKILL right
// after the last 202 loses none of them, and the browser gets them all, in
// order, when it comes back — the job's retained final event included.
func TestAcknowledgedEventsSurviveSIGKILL(t *testing.T) {
	const runs, events = 20, 20
	for run := range runs {
		dir := t.TempDir()
		opts := childOpts{dataDir: dir, localawsAddr: freeAddr(t), mqttAddr: freeAddr(t),
			env: map[string]string{"HERALD_ROLES": "broker,web"}}
		c := startChild(t, fmt.Sprintf("run%d", run), opts)
		s := offlineBrowser(t, c)
		var want []string
		for i := range events {
			typ := "x.step"
			if i == events-1 {
				typ = "job.completed"
			}
			id := fmt.Sprintf("evt_%d_%d", run, i)
			resp, body := postJSON(t, c.base+"/v1/events", testAPIKey, map[string]any{
				"v": 1, "type": typ, "id": id, "channel": s.Channel, "jobId": "job1", "seq": i + 1})
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("run %d: POST event %d: %d %s", run, i, resp.StatusCode, body)
			}
			want = append(want, id)
		}
		c.kill(syscall.SIGKILL)

		c2 := startChild(t, fmt.Sprintf("run%d-restarted", run), opts)
		mc, ca, err := dialMQTT(t, wsOf(c2.base), browserConnect(s, false))
		if err != nil {
			t.Fatalf("run %d: reconnect: %v", run, err)
		}
		if !ca.SessionPresent {
			t.Fatalf("run %d: session lost", run)
		}
		got := receiveIDs(mc, time.Second)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("run %d: after SIGKILL the browser got %d events %v, want %d in order %v", run, len(got), got, len(want), want)
		}
		// The final event is retained for a browser that subscribes later.
		fresh, _, err := dialMQTT(t, wsOf(c2.base), browserConnect(s, true))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fresh.c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.Topic, QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		if got := receiveIDs(fresh, 500*time.Millisecond); len(got) != 1 || got[0] != want[events-1] {
			t.Fatalf("run %d: retained after SIGKILL: %v, want [%s]", run, got, want[events-1])
		}
		c2.kill(syscall.SIGTERM)
	}
}
