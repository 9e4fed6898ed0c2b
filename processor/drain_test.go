package processor

import (
	"testing"
	"time"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
)

// TestHeartbeatKeepsLongStepsInvisible: steps that run longer than the
// visibility timeout are not redelivered while they run, because the
// heartbeat keeps renewing it.
func TestHeartbeatKeepsLongStepsInvisible(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Workers, c.Visibility, c.Heartbeat = 1, 2*time.Second, 500*time.Millisecond })
	// Five minutes of audio: the MP3 and Opus encodes take about 2 s each
	// on the development machine.
	id := e.upload(t, "long.wav", "audio/wav", testkit.ReadFile(t, testkit.Audio(t, t.TempDir(), "long.wav", 300)))
	final, _ := e.events.final(t, id, 90*time.Second)
	if final.Type != event.TypeCompleted {
		t.Fatalf("final %s %+v", final.Type, final.Error)
	}
	started := map[any]int{}
	for _, r := range e.logs.Matching(func(r map[string]any) bool { return r["msg"] == "conversion started" && r["job"] == id }) {
		started[r["output"]]++
	}
	for out, n := range started {
		if n != 1 {
			t.Errorf("%v converted %d times, want once", out, n)
		}
	}
	if len(started) != 3 {
		t.Errorf("conversions %v, want 3 outputs", started)
	}
}

// TestShutdownDrains: on shutdown a running step finishes within the
// drain deadline and its message is deleted; a step that cannot finish in
// time is canceled and its message made visible again at once.
func TestShutdownDrains(t *testing.T) {
	tests := []struct {
		name         string
		drain        time.Duration
		wantStored   bool
		wantReturned int
	}{
		{"finishes in time", 30 * time.Second, true, 0},
		{"canceled after deadline", 200 * time.Millisecond, false, 1},
	}
	wav := testkit.ReadFile(t, testkit.Audio(t, t.TempDir(), "long.wav", 300))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Workers, c.DrainTimeout = 1, tt.drain })
			id := e.upload(t, "long.wav", "audio/wav", wav)
			testkit.WaitFor(t, 30*time.Second, "conversion started", func() bool {
				return len(e.logs.Matching(func(r map[string]any) bool { return r["msg"] == "conversion started" && r["job"] == id })) > 0
			})
			e.stop()
			stored := len(e.logs.Matching(func(r map[string]any) bool { return r["msg"] == "output stored" && r["job"] == id })) == 1
			if stored != tt.wantStored {
				t.Errorf("output stored = %v, want %v", stored, tt.wantStored)
			}
			// Two output steps never started and stay queued; a canceled
			// one is returned to the queue too, immediately visible.
			visible, inflight := queueDepth(t, e.sqs, e.queueURL)
			if visible != 2+tt.wantReturned || inflight != 0 {
				t.Errorf("queue after shutdown: %d visible, %d in flight; want %d visible, 0 in flight", visible, inflight, 2+tt.wantReturned)
			}
		})
	}
}
