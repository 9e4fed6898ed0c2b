package processor

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/localaws"
)

// TestJobStatus: GET /v1/jobs/{jobId}'s answer follows a job through its
// states, read from the records the steps write, and knows nothing of
// other apps' jobs.
func TestJobStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	status := func(app, id string) (job.Status, error) { return e.intake.JobStatus(ctx, app, id) }

	if _, err := status(testApp, "never-started"); !errors.Is(err, job.ErrNoJob) {
		t.Errorf("unknown job: %v, want ErrNoJob", err)
	}
	if _, err := status(testApp, "../x"); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("bad id: %v, want ErrInvalid", err)
	}

	ok := e.upload(t, "ok.png", "image/png", testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "ok.png", 300, 200)))
	final, _ := e.events.final(t, ok, 30*time.Second)
	st, err := status(testApp, ok)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != job.StateCompleted || st.Channel != e.channel || st.Pipeline != "image" || len(st.Outputs) != 4 ||
		st.Progress == nil || st.Progress.Done != 4 || st.Input == nil || st.Input.ContentType != "image/png" ||
		st.CreatedAt.IsZero() || !st.UpdatedAt.Equal(final.Time) {
		t.Errorf("completed job: %+v", st)
	}
	checkOutputs(t, event.Envelope{JobID: ok, Outputs: st.Outputs})
	if _, err := status("other", ok); !errors.Is(err, job.ErrNoJob) {
		t.Errorf("another app's view of the job: %v, want ErrNoJob", err)
	}

	bad := e.putUpload(t, "notes.txt", []byte("plain text"))
	e.events.final(t, bad, 30*time.Second)
	if st, err := status(testApp, bad); err != nil || st.State != job.StateFailed || st.Error == nil || st.Error.Code != "unsupported_format" {
		t.Errorf("failed job: %+v %v", st, err)
	}

	// With no processor running, a submitted job stays queued, and a job
	// whose start step ran reports its progress from its outputs.
	e.stop()
	inKey := "inputs/pic.png"
	put(t, e, inKey, testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "pic.png", 64, 48)), nil)
	id, err := e.intake.SubmitJob(ctx, job.Request{App: testApp, Channel: e.channel, Bucket: localaws.DefaultBucket, Key: inKey})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := status(testApp, id); err != nil || st.State != job.StateQueued || st.Progress != nil || st.CreatedAt.IsZero() {
		t.Errorf("queued job: %+v %v", st, err)
	}
	s := State{Herald: stateMarker, V: stateVersion, App: testApp, Channel: e.channel, JobID: id, Source: SourceSubmit, Step: StepStart,
		Input:    StateInput{Bucket: localaws.DefaultBucket, Key: inKey, Size: 1, MIME: "image/png"},
		Pipeline: "image", Outputs: []string{"thumb-256.webp", "thumb-256.jpg"}}
	if err := e.proc.putRecord(ctx, &s); err != nil {
		t.Fatal(err)
	}
	if st, err := status(testApp, id); err != nil || st.State != job.StateAccepted || st.Progress == nil || st.Progress.Total != 2 || st.Progress.Done != 0 {
		t.Errorf("accepted job: %+v %v", st, err)
	}
	put(t, e, s.job().OutputKey("thumb-256.jpg"), []byte("jpeg"), outputMeta(id, event.Output{Name: "thumb-256"}, usage{}))
	if st, err := status(testApp, id); err != nil || st.State != job.StateConverting || st.Progress.Done != 1 || st.Progress.Total != 2 {
		t.Errorf("converting job: %+v %v", st, err)
	}
}

func put(t testing.TB, e *env, key string, body []byte, meta map[string]string) {
	t.Helper()
	if _, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(localaws.DefaultBucket), Key: aws.String(key),
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))), Metadata: meta}); err != nil {
		t.Fatal(err)
	}
}
