package broker

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/topic"
)

// TestPipelinedPublishesShareCommits: a service that sends many QoS 1
// PUBLISHes without waiting for each PUBACK gets them acknowledged in
// order, every one stored first, and the messages share commits: the
// connection's next PUBLISH is read while the last one is being written to
// disk (before, each one waited for its own commit, so one connection got
// one fsync per message).
func TestPipelinedPublishesShareCommits(t *testing.T) {
	const n = 200
	for _, version := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			metrics := prometheus.NewRegistry()
			tb := startBroker(t, Config{Metrics: metrics, DataDir: t.TempDir()})
			s := offlineBrowser(t, tb, 3600)
			svc := newRaw(dialTCP(t, tb))
			svc.send(t, rawConnect(version, "svc-pipeline", "demo", demoKey, true))
			if h, body := svc.read(t); h != 0x20 || body[1] != 0 {
				t.Fatalf("CONNACK %#x %x", h, body)
			}
			commits := func() float64 { return metricValue(t, metrics, "herald_broker_storage_commit_seconds", nil) }
			before := commits()
			var burst []byte
			for id := uint16(1); id <= n; id++ {
				burst = append(burst, rawPublishQoS1(version, topic.Events("demo", s.Channel), id, fmt.Sprint(id))...)
			}
			svc.send(t, burst)
			for want := uint16(1); want <= n; want++ {
				h, body := svc.read(t)
				if h != 0x40 || len(body) < 2 {
					t.Fatalf("packet %#x %x, want PUBACK %d", h, body, want)
				}
				if id := uint16(body[0])<<8 | uint16(body[1]); id != want {
					t.Fatalf("PUBACK for %d, want %d (in PUBLISH order)", id, want)
				}
				if len(body) > 2 && body[2] != 0 {
					t.Fatalf("PUBACK %d reason %#x, want success", want, body[2])
				}
			}
			if got := metricValue(t, metrics, "herald_broker_app_queued_messages", map[string]string{"app": "demo"}); got != n {
				t.Errorf("messages kept for the browser: %v, want %d", got, n)
			}
			used := commits() - before
			t.Logf("%d pipelined publishes, %v commits", n, used)
			if used >= n {
				t.Errorf("%v commits for %d pipelined publishes: each waited for its own", used, n)
			}
		})
	}
}
