package processor

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/localaws"
)

// TestStoredOutputIsNotRedone: an output step whose output was already
// stored by this job (its step crashed after the PUT) goes straight to the
// fan-in and reports the stored record; an object at an output key that
// no step of this job wrote is made again.
func TestStoredOutputIsNotRedone(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	jobID, _ := job.NewID()
	inKey := "inputs/" + jobID + ".png"
	put := func(key string, body []byte, meta map[string]string) {
		t.Helper()
		if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(localaws.DefaultBucket), Key: aws.String(key),
			Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String("image/webp"), Metadata: meta}); err != nil {
			t.Fatal(err)
		}
	}
	put(inKey, testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "in.png", 640, 480)), nil)
	st := State{Herald: stateMarker, V: stateVersion, App: testApp, Channel: e.channel, JobID: jobID, Source: SourceSubmit,
		Step: StepOutput, Pipeline: "image", Outputs: []string{"thumb-256.webp", "thumb-256.jpg"},
		Input: StateInput{Bucket: localaws.DefaultBucket, Key: inKey, Size: 1}}
	k := st.job()
	done := []byte("stored before a crash")
	put(k.OutputKey("thumb-256.webp"), done, outputMeta(jobID, event.Output{Name: "thumb-256", Width: 7, Height: 5}, usage{}))
	put(k.OutputKey("thumb-256.jpg"), []byte("not ours"), nil)
	for _, file := range st.Outputs {
		s := st
		s.Output = file
		if err := sendState(ctx, e.sqs, e.queueURL, &s); err != nil {
			t.Fatal(err)
		}
	}
	final, _ := e.events.final(t, jobID, 30*time.Second)
	if final.Type != event.TypeCompleted || len(final.Outputs) != 2 {
		t.Fatalf("got %s with %d outputs (%+v), want job.completed with 2", final.Type, len(final.Outputs), final.Error)
	}
	got := final.Outputs
	if got[0].Width != 7 || got[0].Height != 5 || got[0].Bytes != int64(len(done)) || got[0].Name != "thumb-256" {
		t.Errorf("stored output reported as %+v, want its stored record (7x5, %d bytes)", got[0], len(done))
	}
	if got[1].Width != 256 || got[1].ContentType != "image/jpeg" {
		t.Errorf("foreign object reported as %+v, want a new 256-wide JPEG", got[1])
	}
	obj, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(localaws.DefaultBucket), Key: aws.String(k.OutputKey("thumb-256.webp"))})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if !bytes.Equal(b, done) {
		t.Errorf("stored output was rewritten: %d bytes", len(b))
	}
	if n := len(e.logs.Matching(func(r map[string]any) bool { return r["msg"] == "output stored" && r["job"] == jobID })); n != 1 {
		t.Errorf("%d outputs converted, want 1", n)
	}
}
