package processor

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/tenant"
)

// TestSmallJobNotHeldBehindAnotherAppsBacklog is the outcome of fair
// scheduling with real converters, on this machine's cores: app "hog"
// uploads five costly SVGs (blurred shapes: two previews of about 6 s of
// CPU each per job, so ten slow conversions running and queued), and while
// they are all in the processor a browser of app demo uploads a small PNG.
// Its job must complete within 5 s; in arrival order it would wait for
// the hog's ten.
func TestSmallJobNotHeldBehindAnotherAppsBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("costly conversions")
	}
	e := newEnv(t)
	hogChannel, err := tenant.NewChannelID()
	if err != nil {
		t.Fatal(err)
	}
	svg := testkit.BlurredSVG(400)
	var hog []string
	for i := range 5 {
		g, err := e.intake.GrantUpload(context.Background(), job.UploadRequest{App: "hog", Channel: hogChannel,
			Filename: fmt.Sprintf("blur-%d.svg", i), ContentType: "image/svg+xml", Size: int64(len(svg)), MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if resp, body := (testkit.Upload{URL: g.URL, Fields: g.Fields, Filename: "blur.svg", Data: svg}).MustPost(t); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("upload: %d %s", resp.StatusCode, body)
		}
		hog = append(hog, g.JobID)
	}
	// Every hog job started (its ten previews queued behind or in the two
	// conversion slots) and conversions running.
	testkit.WaitFor(t, 60*time.Second, "the hog's five jobs accepted and converting", func() bool {
		accepted := len(e.logs.Matching(func(r map[string]any) bool { return r["msg"] == "job accepted" && contains(hog, r["job"]) }))
		started := len(e.logs.Matching(func(r map[string]any) bool { return r["msg"] == "conversion started" && contains(hog, r["job"]) }))
		return accepted == 5 && started >= 2
	})

	png := testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "small.png", 640, 480))
	start := time.Now()
	id := e.upload(t, "small.png", "image/png", png)
	final, _ := e.events.final(t, id, 90*time.Second)
	took := e.events.receivedAt(final.ID).Sub(start)
	slowDone := len(e.logs.Matching(func(r map[string]any) bool {
		return r["msg"] == "output stored" && contains(hog, r["job"]) && (r["output"] == "preview-1024.webp" || r["output"] == "preview-1024.jpg")
	}))
	t.Logf("the small PNG's job (4 outputs) completed %v after its upload; the hog had finished %d of its 10 previews",
		took.Round(time.Millisecond), slowDone)
	if final.Type != event.TypeCompleted {
		t.Fatalf("small job: %s %+v", final.Type, final.Error)
	}
	if took > 5*time.Second {
		t.Errorf("the small job took %v behind the other app's backlog, want under 5 s", took.Round(time.Millisecond))
	}
	if slowDone >= 10 {
		t.Errorf("the hog's backlog was already done: the test proves nothing")
	}
}

func contains(ids []string, v any) bool {
	s, _ := v.(string)
	for _, id := range ids {
		if id == s {
			return true
		}
	}
	return false
}

// TestHeldMessagesGoBackToTheQueue: with one worker, the output steps
// waiting behind a long conversion go back to the end of the queue after
// MaxHold (for any processor to take), and the job still completes with
// each output converted once.
func TestHeldMessagesGoBackToTheQueue(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Workers, c.Conversions, c.MaxHold = 1, 1, 500*time.Millisecond })
	id := e.upload(t, "long.wav", "audio/wav", testkit.ReadFile(t, testkit.Audio(t, t.TempDir(), "long.wav", 300)))
	final, _ := e.events.final(t, id, 120*time.Second)
	if final.Type != event.TypeCompleted {
		t.Fatalf("final %s %+v", final.Type, final.Error)
	}
	if n, _ := testkit.Metric(t, e.metrics, "herald_processor_sqs_messages_requeued_total", nil); n < 1 {
		t.Errorf("no held message requeued after waiting %v behind a long conversion", 500*time.Millisecond)
	}
	converted := map[any]int{}
	for _, r := range e.logs.Matching(func(r map[string]any) bool { return r["msg"] == "output stored" && r["job"] == id }) {
		converted[r["output"]]++
	}
	if len(converted) != 3 {
		t.Errorf("outputs stored %v, want 3", converted)
	}
	for out, n := range converted {
		if n != 1 {
			t.Errorf("%v stored %d times", out, n)
		}
	}
}
