package processor

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/localaws"
)

// TestEveryFormatEndToEnd uploads one file of every built-in format the way
// a browser does (presigned POST) and follows the job over MQTT:
// job.accepted, job.progress for every output, then job.completed whose
// outputs exist in S3 with the announced type and size.
func TestEveryFormatEndToEnd(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	type sample struct {
		file, declared string
		data           []byte
		sniffed        string
		outputs        int
	}
	img := func(file, declared string, data []byte, sniffed string) sample {
		return sample{file, declared, data, sniffed, 4}
	}
	aud := func(file, declared, sniffed string) sample {
		return sample{file, declared, testkit.ReadFile(t, testkit.Audio(t, dir, file, 1.5)), sniffed, 3}
	}
	samples := []sample{
		img("photo.jpg", "image/jpeg", testkit.ReadFile(t, testkit.Image(t, dir, "photo.jpg", 640, 480)), "image/jpeg"),
		img("shot.png", "image/png", testkit.ReadFile(t, testkit.Image(t, dir, "shot.png", 640, 480)), "image/png"),
		img("pic.webp", "image/webp", testkit.ReadFile(t, testkit.Image(t, dir, "pic.webp", 320, 200)), "image/webp"),
		img("anim.gif", "image/gif", testkit.ReadFile(t, testkit.Image(t, dir, "anim.gif", 320, 200)), "image/gif"),
		img("scan.tif", "image/tiff", testkit.ReadFile(t, testkit.Image(t, dir, "scan.tif", 640, 480)), "image/tiff"),
		img("layers.psd", "", testkit.PSD(64, 48), "image/vnd.adobe.photoshop"),
		img("phone.heic", "image/heic", testkit.ReadFile(t, testkit.Image(t, dir, "phone.heic", 320, 240)), "image/heic"),
		img("new.avif", "image/avif", testkit.ReadFile(t, testkit.Image(t, dir, "new.avif", 320, 240)), "image/avif"),
		img("doc.pdf", "application/pdf", testkit.PDF(300, 200), "application/pdf"),
		img("logo.svg", "image/svg+xml", []byte(svgFile), "image/svg+xml"),
		aud("tone.wav", "audio/wav", "audio/wav"),
		aud("tone.flac", "audio/flac", "audio/flac"),
		aud("tone.aiff", "audio/x-aiff", "audio/aiff"),
		aud("tone.mp3", "audio/mpeg", "audio/mpeg"),
		aud("tone.ogg", "audio/ogg", "audio/ogg"),
		aud("tone.m4a", "audio/x-m4a", "audio/mp4"),
	}
	jobs := make([]string, len(samples))
	for i, s := range samples {
		jobs[i] = e.upload(t, s.file, s.declared, s.data)
	}
	var wg sync.WaitGroup
	for i, s := range samples {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(s.file, func(t *testing.T) {
				final, evs := e.events.final(t, jobs[i], 60*time.Second)
				if final.Type != event.TypeCompleted {
					t.Fatalf("final event %s (%+v), want job.completed", final.Type, final.Error)
				}
				checkJobEvents(t, final, evs, s.outputs)
				if got := final.Input.ContentType; got != s.sniffed {
					t.Errorf("input contentType %q, want sniffed %q", got, s.sniffed)
				}
				if final.Input.Size != int64(len(s.data)) {
					t.Errorf("input size %d, want %d", final.Input.Size, len(s.data))
				}
				checkOutputs(t, final)
				for _, o := range final.Outputs {
					if strings.HasPrefix(o.ContentType, "image/") && (o.Width == 0 || o.Height == 0) {
						t.Errorf("%s: no size", o.Key)
					}
					if strings.HasPrefix(o.ContentType, "audio/") && o.Duration < 1 {
						t.Errorf("%s: duration %v", o.Key, o.Duration)
					}
				}
			})
		}()
	}
	wg.Wait()
	waitQueueEmpty(t, e)
}

// checkJobEvents checks the event sequence of a completed job.
func checkJobEvents(t testing.TB, final event.Envelope, evs []event.Envelope, outputs int) {
	t.Helper()
	var accepted, progress int
	var lastSeq int64
	for _, ev := range evs {
		switch ev.Type {
		case event.TypeAccepted:
			accepted++
			if ev.Seq != 1 || ev.Progress == nil || ev.Progress.Total != outputs {
				t.Errorf("job.accepted seq %d progress %+v, want seq 1 total %d", ev.Seq, ev.Progress, outputs)
			}
		case event.TypeProgress:
			progress++
			if ev.Seq != int64(1+ev.Progress.Done) {
				t.Errorf("job.progress seq %d for done %d", ev.Seq, ev.Progress.Done)
			}
		}
		lastSeq = max(lastSeq, ev.Seq)
	}
	if accepted != 1 || progress < 1 || progress > outputs {
		t.Errorf("got %d accepted and %d progress events, want 1 and 1..%d", accepted, progress, outputs)
	}
	if len(final.Outputs) != outputs || final.Seq != int64(outputs+2) || final.Seq != lastSeq {
		t.Errorf("completed with %d outputs seq %d (max seen %d), want %d outputs seq %d", len(final.Outputs), final.Seq, lastSeq, outputs, outputs+2)
	}
	for _, o := range final.Outputs {
		if !strings.HasPrefix(o.Key, "converted/"+final.App+"/"+final.Channel+"/"+final.JobID+"/") {
			t.Errorf("output key %s outside the job's prefix", o.Key)
		}
	}
}

// waitQueueEmpty waits until nothing is left in the queue, in flight or
// not.
func waitQueueEmpty(t testing.TB, e *env) {
	t.Helper()
	testkit.WaitFor(t, 20*time.Second, "queue drained", func() bool {
		n, inflight := queueDepth(t, e.sqs, e.queueURL)
		return n == 0 && inflight == 0
	})
}

// TestSubmitExistingObject: POST /v1/jobs's path converts an object that is
// already in S3, under any key; a missing object is refused.
func TestSubmitExistingObject(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	data := testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "library.png", 400, 300))
	const key = "library/2026/library.png"
	if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(localaws.DefaultBucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	jobID, err := e.intake.SubmitJob(ctx, job.Request{App: testApp, Channel: e.channel, Bucket: localaws.DefaultBucket, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	final, evs := e.events.final(t, jobID, 30*time.Second)
	if final.Type != event.TypeCompleted {
		t.Fatalf("final %s %+v", final.Type, final.Error)
	}
	checkJobEvents(t, final, evs, 4)
	checkOutputs(t, final)
	if final.Input.Key != key {
		t.Errorf("input key %q, want %q", final.Input.Key, key)
	}

	for _, tt := range []struct {
		name    string
		req     job.Request
		wantErr error
	}{
		{"missing object", job.Request{App: testApp, Channel: e.channel, Bucket: localaws.DefaultBucket, Key: "nope.png"}, job.ErrNotFound},
		{"not a channel id", job.Request{App: testApp, Channel: "short", Bucket: localaws.DefaultBucket, Key: key}, job.ErrInvalid},
		// The gateway can read this bucket (localaws serves any), but it is
		// not one jobs may read: nothing is enqueued.
		{"bucket not allowed", job.Request{App: testApp, Channel: e.channel, Bucket: "someone-elses", Key: key}, job.ErrForbidden},
		// Herald's own records (this job's final marker exists by now) are
		// not input: their sizes would come back in job.failed.
		{"herald's own prefix", job.Request{App: testApp, Channel: e.channel, Bucket: localaws.DefaultBucket,
			Key: job.RecordsPrefix + testApp + "/" + e.channel + "/" + jobID + "/final.json"}, job.ErrForbidden},
		{"herald's own prefix, missing object", job.Request{App: testApp, Channel: e.channel, Bucket: localaws.DefaultBucket,
			Key: "herald/x"}, job.ErrForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.intake.SubmitJob(ctx, tt.req); !errorsIs(err, tt.wantErr) {
				t.Errorf("SubmitJob() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestSubmitFromSourceBucket: a bucket listed in SourceBuckets is read like
// the uploads bucket.
func TestSubmitFromSourceBucket(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("library")}); err != nil {
		t.Fatal(err)
	}
	data := testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "scan.png", 300, 200))
	if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("library"), Key: aws.String("scan.png"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	in, err := NewIntake(IntakeConfig{S3: e.s3, Presigner: s3.NewPresignClient(e.s3), Queue: e.sqs, QueueURL: e.queueURL,
		Bucket: localaws.DefaultBucket, SourceBuckets: []string{"library"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	jobID, err := in.SubmitJob(ctx, job.Request{App: testApp, Channel: e.channel, Bucket: "library", Key: "scan.png"})
	if err != nil {
		t.Fatal(err)
	}
	if final, _ := e.events.final(t, jobID, 30*time.Second); final.Type != event.TypeCompleted {
		t.Fatalf("final %s %+v", final.Type, final.Error)
	}
}

// TestExternalManifestCompletes: an external converter writes outputs and
// then manifest.json; the processor publishes job.completed with
// presigned URLs.
func TestExternalManifestCompletes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	jobID, _ := job.NewID()
	k := job.Key{App: testApp, Channel: e.channel, JobID: jobID}
	put := func(key, ct string, body []byte) {
		t.Helper()
		if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(localaws.DefaultBucket), Key: aws.String(key),
			Body: bytes.NewReader(body), ContentType: aws.String(ct)}); err != nil {
			t.Fatal(err)
		}
	}
	put(k.OutputKey("report.txt"), "text/plain", []byte("hello external"))
	put(k.OutputKey(job.ManifestName), "application/json",
		[]byte(`{"outputs":[{"name":"report","key":"`+k.OutputKey("report.txt")+`","contentType":"text/plain","bytes":14}]}`))
	final, _ := e.events.final(t, jobID, 20*time.Second)
	if final.Type != event.TypeCompleted || len(final.Outputs) != 1 || final.Seq != 3 {
		t.Fatalf("got %s seq %d outputs %+v, want job.completed seq 3 with one output", final.Type, final.Seq, final.Outputs)
	}
	checkOutputs(t, final)

	// A manifest pointing outside its job fails the job instead.
	bad, _ := job.NewID()
	kb := job.Key{App: testApp, Channel: e.channel, JobID: bad}
	put(kb.OutputKey(job.ManifestName), "application/json", []byte(`{"outputs":[{"name":"x","key":"uploads/secret","contentType":"text/plain","bytes":1}]}`))
	final, _ = e.events.final(t, bad, 20*time.Second)
	if final.Type != event.TypeFailed || final.Error.Code != "converter_failed" {
		t.Fatalf("bad manifest: got %s %+v, want job.failed converter_failed", final.Type, final.Error)
	}
}
