package processor

import (
	"fmt"
	"testing"
	"time"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/processor/convert"
)

// seq increases strictly over a job's events as a subscriber receives
// them, also when the job's outputs finish at the same moment in
// concurrent steps (each of these outputs takes the same 200 ms).
func TestSeqIncreasesUnderConcurrentOutputs(t *testing.T) {
	const outputs, jobs = 6, 6
	var specs []convert.OutputSpec
	for i := range outputs {
		specs = append(specs, convert.OutputSpec{Name: fmt.Sprintf("copy%d", i), Converter: convert.ConverterCommand, Format: "png",
			Command: []string{"/bin/sh", "-c", `sleep 0.2 && cp "$1" "$2"`, "sh", "{input}", "{output}"}})
	}
	e := newEnv(t, func(c *Config) {
		c.Pipelines = []convert.Pipeline{{Name: "copies", KeyPrefix: "uploads/", MIME: []string{"image/png"}, Outputs: specs}}
		c.Workers, c.Conversions = 2*outputs, outputs
	})
	png := testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "in.png", 64, 48))
	var ids []string
	for i := range jobs {
		ids = append(ids, e.upload(t, fmt.Sprintf("in%d.png", i), "image/png", png))
	}
	for _, id := range ids {
		final, evs := e.events.final(t, id, 60*time.Second)
		if final.Type != event.TypeCompleted {
			t.Fatalf("job %s: %s %+v", id, final.Type, final.Error)
		}
		time.Sleep(100 * time.Millisecond) // a late progress event would arrive now
		_, evs = e.events.final(t, id, time.Second)
		var seqs []int64
		for _, ev := range evs {
			seqs = append(seqs, ev.Seq)
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("job %s: seq as received %v, want strictly increasing", id, seqs)
			}
		}
	}
}
