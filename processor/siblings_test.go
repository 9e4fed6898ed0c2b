package processor

import (
	"testing"
	"time"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/processor/convert"
)

// TestFailingStepStopsItsSiblings runs a job of two outputs side by side
// with real vips: a costly preview of a blurred SVG (seconds of CPU) and a
// thumbnail whose converter cannot start (64 MiB of address space), which
// fails the job at once. The preview's converter is killed within a
// moment of job.failed, its output never stored, its message done with.
func TestFailingStepStopsItsSiblings(t *testing.T) {
	slow := convert.OutputSpec{Name: "preview-1024", Converter: convert.ConverterImage, Format: "webp", Size: 1024}
	broken := convert.OutputSpec{Name: "broken", Converter: convert.ConverterImage, Format: "jpeg", Size: 256,
		Limits: convert.Limits{MemoryLimit: 64 << 20}}
	e := newEnv(t, func(c *Config) {
		c.Pipelines = []convert.Pipeline{{Name: "svg", KeyPrefix: "uploads/", MIME: []string{"image/svg+xml"},
			Outputs: []convert.OutputSpec{slow, broken}}}
	})
	id := e.upload(t, "blur.svg", "image/svg+xml", testkit.BlurredSVG(400))
	final, _ := e.events.final(t, id, 60*time.Second)
	if final.Type != event.TypeFailed || final.Error.Code != string(convert.CodeConverterFailed) {
		t.Fatalf("final %s %+v, want job.failed converter_failed", final.Type, final.Error)
	}
	failedAt := e.events.receivedAt(final.ID)
	stoppedLine := func(r map[string]any) bool {
		return r["msg"] == "step stopped: its job already ended" && r["job"] == id && r["output"] == "preview-1024.webp"
	}
	testkit.WaitFor(t, 30*time.Second, "the preview step stopped", func() bool { return len(e.logs.Matching(stoppedLine)) == 1 })
	at, err := time.Parse(time.RFC3339Nano, e.logs.Matching(stoppedLine)[0]["time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	after := at.Sub(failedAt)
	t.Logf("the sibling's converter was stopped %v after job.failed arrived", after.Round(time.Millisecond))
	if after > time.Second {
		t.Errorf("the sibling ran on for %v after its job failed, want it stopped at once", after)
	}
	if n, _ := testkit.Metric(t, e.metrics, "herald_processor_conversion_duration_seconds", map[string]string{"converter": "image", "outcome": "canceled"}); n != 1 {
		t.Errorf("conversions canceled: %v, want the preview's", n)
	}
	if n := len(e.logs.Matching(func(r map[string]any) bool { return r["msg"] == "output stored" && r["job"] == id })); n != 0 {
		t.Errorf("%d outputs stored for a failed job", n)
	}
	testkit.WaitFor(t, 10*time.Second, "queue empty", func() bool {
		visible, inflight := queueDepth(t, e.sqs, e.queueURL)
		return visible == 0 && inflight == 0
	})
}
