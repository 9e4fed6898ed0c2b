package processor

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/processor/convert"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// TestHostileInputsFailWithCode: each hostile upload ends in exactly one
// job.failed with the converter's code, and the worker keeps serving: a
// good job after them completes.
func TestHostileInputsFailWithCode(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Workers = 2 })
	dir := t.TempDir()
	tif := testkit.ReadFile(t, testkit.Image(t, dir, "scan.tif", 640, 480))
	cases := []struct {
		name     string
		upload   func() string
		wantType string
		wantCode string
	}{
		{"decompression bomb", func() string { return e.upload(t, "bomb.png", "image/png", testkit.PNGBomb(100000, 100000)) }, event.TypeFailed, "too_large"},
		{"truncated tiff", func() string { return e.upload(t, "cut.tif", "image/tiff", tif[:len(tif)/2]) }, event.TypeFailed, "corrupt_input"},
		{"text named png", func() string { return e.upload(t, "notes.png", "image/png", []byte("just some text, not a picture\n")) }, event.TypeFailed, "unsupported_format"},
		{"svg with external refs", func() string { return e.upload(t, "refs.svg", "image/svg+xml", []byte(svgExternalRefs)) }, event.TypeFailed, "corrupt_input"},
		{"zero-byte file", func() string { return e.putUpload(t, "empty.jpg", nil) }, event.TypeFailed, "corrupt_input"},
		// The real type wins over the name: a PNG called .mp3 is converted
		// as the image it is.
		{"png named mp3", func() string {
			return e.upload(t, "song.mp3", "audio/mpeg", testkit.ReadFile(t, testkit.Image(t, dir, "real.png", 200, 100)))
		}, event.TypeCompleted, ""},
	}
	jobs := make([]string, len(cases))
	for i, c := range cases {
		jobs[i] = c.upload()
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			final, evs := e.events.final(t, jobs[i], 60*time.Second)
			if final.Type != c.wantType {
				t.Fatalf("final %s %+v, want %s", final.Type, final.Error, c.wantType)
			}
			if c.wantCode != "" && (final.Error == nil || final.Error.Code != c.wantCode) {
				t.Fatalf("error %+v, want code %s", final.Error, c.wantCode)
			}
			if c.wantCode != "" {
				// The browser gets our fixed message; the converter's own
				// words (stderr, pids, paths) only reach the log.
				if want := FailureMessage(convert.Code(c.wantCode)); final.Error.Message != want {
					t.Errorf("message %q, want %q", final.Error.Message, want)
				}
				// The line is written once the event is out, so it may
				// trail the event's arrival by a moment.
				logged := testkit.Eventually(5*time.Second, func() bool {
					return len(e.logs.Matching(func(m map[string]any) bool {
						d, _ := m["detail"].(string)
						return m["msg"] == "job" && m["job"] == jobs[i] && m["code"] == c.wantCode && d != ""
					})) > 0
				})
				if !logged {
					t.Errorf("no \"job\" log line with the failure's detail for job %s", jobs[i])
				}
			}
			var finals int
			for _, ev := range evs {
				if ev.Final() {
					finals++
					if ev.Seq < 2 {
						t.Errorf("final seq %d, want >= 2", ev.Seq)
					}
				}
			}
			if finals != 1 {
				t.Errorf("%d distinct final events, want 1", finals)
			}
		})
	}
	good := e.upload(t, "after.jpg", "image/jpeg", testkit.ReadFile(t, testkit.Image(t, dir, "after.jpg", 300, 200)))
	if final, _ := e.events.final(t, good, 30*time.Second); final.Type != event.TypeCompleted {
		t.Fatalf("good job after hostile ones: %s %+v", final.Type, final.Error)
	}
	waitQueueEmpty(t, e)
}

// TestMalformedEventGoesToDLQ: a body that is neither an S3 event nor a
// job state is never deleted; after maxReceiveCount (5) receives the
// redrive policy moves it to the dead-letter queue, and each receive logs
// one line naming the message.
func TestMalformedEventGoesToDLQ(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(e.queueURL),
		Attributes: map[string]string{"VisibilityTimeout": "1"}}); err != nil {
		t.Fatal(err)
	}
	out, err := e.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(e.queueURL), MessageBody: aws.String(`{"Records":[{"eventName":"ObjectCreated:Put"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.MessageId)
	testkit.WaitFor(t, 30*time.Second, "message in the DLQ", func() bool {
		n, _ := queueDepth(t, e.sqs, e.dlqURL)
		return n == 1
	})
	lines := e.logs.Matching(func(r map[string]any) bool {
		return r["msg"] == "malformed message left for the dead-letter queue" && r["message_id"] == id
	})
	if len(lines) != 5 {
		t.Errorf("got %d log lines naming %s, want 5 (one per receive)", len(lines), id)
	}
	if len(lines) > 0 && lines[0]["err"] == "" {
		t.Error("log line does not carry the parse error")
	}
	// The worker still serves.
	good := e.upload(t, "ok.png", "image/png", testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "ok.png", 100, 100)))
	if final, _ := e.events.final(t, good, 30*time.Second); final.Type != event.TypeCompleted {
		t.Fatalf("job after malformed message: %s %+v", final.Type, final.Error)
	}
}

func queueDepth(t testing.TB, c *sqs.Client, url string) (visible, inflight int) {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	visible, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	inflight, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, inflight
}
