package processor

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/localaws"
)

// TestFinalMarkerReplay: a step that finds the job's final marker written
// by itself (it crashed between the write and deleting its message)
// publishes the stored final event again, same id; any other step finds
// the job over and does nothing. Both messages are deleted.
func TestFinalMarkerReplay(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	jobID, _ := job.NewID()
	st := State{Herald: stateMarker, V: stateVersion, App: testApp, Channel: e.channel, JobID: jobID, Source: SourceUpload,
		Step: StepOutput, Pipeline: "image", Outputs: []string{"a.webp", "b.webp"}, Output: "b.webp",
		Input: StateInput{Bucket: localaws.DefaultBucket, Key: "uploads/x", Size: 1}}
	stored := &event.Envelope{V: 1, Type: event.TypeFailed, ID: event.StableID(jobID, "output:b.webp", event.TypeFailed), JobID: jobID,
		App: testApp, Channel: e.channel, Seq: 4, Time: time.Now().UTC(), Error: &event.Error{Code: "timeout", Message: "slow"}}
	if err := e.proc.putJSON(ctx, e.proc.finalMarkerKey(st.job()), finalMarker{Writer: "output:b.webp", Event: stored}, true); err != nil {
		t.Fatal(err)
	}
	// Another step: nothing to publish.
	other := st
	other.Output = "a.webp"
	if err := sendState(ctx, e.sqs, e.queueURL, &other); err != nil {
		t.Fatal(err)
	}
	// The writer's retry: the stored event again.
	if err := sendState(ctx, e.sqs, e.queueURL, &st); err != nil {
		t.Fatal(err)
	}
	final, evs := e.events.final(t, jobID, 10*time.Second)
	if final.ID != stored.ID || final.Error == nil || final.Error.Code != "timeout" || len(evs) != 1 {
		t.Fatalf("got %+v (all %d events), want the stored job.failed only", final, len(evs))
	}
	waitQueueEmpty(t, e)
	// Neither step converted anything.
	out, err := e.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(localaws.DefaultBucket), Prefix: aws.String("converted/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 0 {
		t.Errorf("outputs written after the job ended: %d", len(out.Contents))
	}
}
