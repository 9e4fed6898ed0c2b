package bridge_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
)

// TestMQTTBrokerRestartMidStream stops Mosquitto while events flow, keeps
// publishing while it is down, restarts it on the same port (persistence
// on) and checks that every event arrives, in order per channel, and that
// the events published during the outage arrive exactly once.
func TestMQTTBrokerRestartMidStream(t *testing.T) {
	m := testkit.StartMosquitto(t)
	const perPhase = 100
	chans := []string{newChannel(t), newChannel(t), newChannel(t), newChannel(t)}
	sub := subscribe(t, "ws://"+m.WSAddr, "apps/demo/#")
	b := startBridge(t, bridge.MQTTConfig{URL: "mqtt://" + m.PlainAddr, QueueDir: t.TempDir(), Connections: 2})

	ctx := context.Background()
	seq := map[string]int64{}
	publish := func(n int) []string {
		var ids []string
		for i := range n {
			ch := chans[i%len(chans)]
			seq[ch]++
			e := progress(ch, seq[ch])
			if err := b.Publish(ctx, e); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			ids = append(ids, e.ID)
			if i%10 == 0 {
				time.Sleep(time.Millisecond) // let some be in flight when the broker dies
			}
		}
		return ids
	}

	all := publish(perPhase)
	m.Stop()
	during := publish(perPhase)
	all = append(all, during...)
	if q := b.Queued(); q < perPhase {
		t.Errorf("queued while the broker is down: got %d, want >= %d", q, perPhase)
	}
	m.Start()
	all = append(all, publish(perPhase)...)

	// Wait until every distinct event arrived.
	var unique map[string]int
	testkit.Eventually(30*time.Second, func() bool {
		unique = map[string]int{}
		for _, e := range testkit.Decode[event.Envelope](t, sub.Messages()) {
			unique[e.ID]++
		}
		return len(unique) >= 3*perPhase
	})
	if len(unique) != 3*perPhase {
		missing := map[string]int{} // by phase
		for i, id := range all {
			if unique[id] == 0 {
				missing[[]string{"before", "during", "after"}[i/perPhase]]++
			}
		}
		t.Fatalf("distinct events: got %d, want %d; missing by phase %v; still queued %d\nmosquitto: %s",
			len(unique), 3*perPhase, missing, b.Queued(), m.Log())
	}
	for _, id := range during {
		if n := unique[id]; n != 1 {
			t.Errorf("event %s published during the outage: got %d copies, want 1", id, n)
		}
	}
	// Per channel, first deliveries are in publish order.
	got := testkit.Decode[event.Envelope](t, sub.Wait(t, 3*perPhase, time.Second))
	last := map[string]int64{}
	seen := map[string]bool{}
	dups := 0
	for _, e := range got {
		if seen[e.ID] {
			dups++
			continue
		}
		seen[e.ID] = true
		if e.Seq != last[e.Channel]+1 {
			t.Errorf("channel %s: got seq %d after %d, want %d", e.Channel, e.Seq, last[e.Channel], last[e.Channel]+1)
		}
		last[e.Channel] = e.Seq
	}
	t.Logf("%d events, %d redelivered duplicates (at-least-once; clients dedupe on id)", len(unique), dups)
	// The subscriber can see the last event before its PUBACK reached the bridge.
	testkit.WaitFor(t, 5*time.Second, "bridge queue empty after delivery", func() bool { return b.Queued() == 0 })
}
