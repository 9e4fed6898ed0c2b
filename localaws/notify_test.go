package localaws

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// jsonShape lists a JSON document's paths in document order with each
// value's JSON type, e.g. "Records[].s3.object.size:number".
func jsonShape(t *testing.T, doc []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var out []string
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				out = append(out, path+":object")
				for dec.More() {
					k, err := dec.Token()
					if err != nil {
						return err
					}
					if err := walk(path + "." + k.(string)); err != nil {
						return err
					}
				}
			case '[':
				out = append(out, path+":array")
				for dec.More() {
					if err := walk(path + "[]"); err != nil {
						return err
					}
				}
			}
			_, err := dec.Token() // closing delimiter
			return err
		case string:
			out = append(out, path+":string")
		case json.Number:
			out = append(out, path+":number")
		case bool:
			out = append(out, path+":bool")
		case nil:
			out = append(out, path+":null")
		}
		return nil
	}
	if err := walk(""); err != nil {
		t.Fatalf("walk %s: %v", doc, err)
	}
	return out
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "aws", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func assertSameShape(t *testing.T, got []byte, sampleName string) {
	t.Helper()
	g, w := strings.Join(jsonShape(t, got), "\n"), strings.Join(jsonShape(t, sample(t, sampleName)), "\n")
	if g != w {
		t.Fatalf("message shape differs from %s:\ngot:\n%s\nwant:\n%s\nmessage: %s", sampleName, g, w, got)
	}
}

// drain receives every message now in the queue, deleting them.
func (e *testEnv) drain(t *testing.T, queue string) []string {
	t.Helper()
	ctx := ctxT(t)
	url, err := e.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for {
		out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url.QueueUrl, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return bodies
		}
		for _, m := range out.Messages {
			bodies = append(bodies, *m.Body)
			if _, err := e.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: url.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type eventBody struct {
	Records []struct {
		EventVersion, EventSource, AWSRegion, EventTime, EventName string
		UserIdentity                                               struct{ PrincipalID string }
		S3                                                         struct {
			ConfigurationID string
			Bucket          struct{ Name, ARN string }
			Object          struct {
				Key       string
				Size      *int64
				ETag      string
				Sequencer string
			}
		}
	}
}

func decodeEvent(t *testing.T, body string) eventBody {
	t.Helper()
	var ev eventBody
	if err := json.Unmarshal([]byte(body), &ev); err != nil || len(ev.Records) != 1 {
		t.Fatalf("event %s: %v", body, err)
	}
	return ev
}

func TestNotificationDefaults(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	// New configured the default bucket: S3 sent its test event.
	msgs := e.drain(t, "herald-events")
	if len(msgs) != 1 {
		t.Fatalf("messages after start: got %d want 1 test event: %v", len(msgs), msgs)
	}
	assertSameShape(t, []byte(msgs[0]), "s3-test-event.json")
	if !strings.Contains(msgs[0], `"Event":"s3:TestEvent"`) || !strings.Contains(msgs[0], `"Bucket":"herald"`) {
		t.Errorf("test event: %s", msgs[0])
	}

	put := func(key, body string) string {
		out, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String(key), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Trim(*out.ETag, `"`)
	}
	etag := put("uploads/demo/ch1/job1/my photo (1).png", "png-bytes")
	put("elsewhere/x.png", "no event")
	put("converted/demo/ch1/job1/thumb.webp", "no event")
	put("converted/demo/ch1/job1/manifest.json", "{}")
	msgs = e.drain(t, "herald-events")
	if len(msgs) != 2 {
		t.Fatalf("messages: got %d want 2: %v", len(msgs), msgs)
	}
	assertSameShape(t, []byte(msgs[0]), "s3-event-objectcreated-put.json")
	ev := decodeEvent(t, msgs[0])
	r := ev.Records[0]
	checks := []struct{ name, got, want string }{
		{"eventVersion", r.EventVersion, "2.1"},
		{"eventSource", r.EventSource, "aws:s3"},
		{"awsRegion", r.AWSRegion, "us-east-1"},
		{"eventName", r.EventName, "ObjectCreated:Put"},
		{"principal", r.UserIdentity.PrincipalID, "AWS:test"},
		{"configurationId", r.S3.ConfigurationID, "herald-uploads"},
		{"bucket", r.S3.Bucket.Name, "herald"},
		{"arn", r.S3.Bucket.ARN, "arn:aws:s3:::herald"},
		{"key", r.S3.Object.Key, "uploads/demo/ch1/job1/my+photo+%281%29.png"},
		{"eTag", r.S3.Object.ETag, etag},
		{"size", fmt.Sprint(*r.S3.Object.Size), "9"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q want %q", c.name, c.got, c.want)
		}
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", r.EventTime); err != nil {
		t.Errorf("eventTime %q not millisecond ISO-8601 UTC: %v", r.EventTime, err)
	}
	m := decodeEvent(t, msgs[1]).Records[0]
	if m.S3.Object.Key != "converted/demo/ch1/job1/manifest.json" || m.S3.ConfigurationID != "herald-manifests" {
		t.Errorf("manifest event: %s", msgs[1])
	}

	// Copy and multipart complete produce their own event names.
	if _, err := e.s3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("herald"), Key: aws.String("uploads/copied"), CopySource: aws.String("herald/elsewhere/x.png")}); err != nil {
		t.Fatal(err)
	}
	mp, err := e.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("herald"), Key: aws.String("uploads/big")})
	if err != nil {
		t.Fatal(err)
	}
	part, err := e.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("herald"), Key: aws.String("uploads/big"), UploadId: mp.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("only part")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("herald"), Key: aws.String("uploads/big"), UploadId: mp.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}}}); err != nil {
		t.Fatal(err)
	}
	msgs = e.drain(t, "herald-events")
	var names []string
	for _, m := range msgs {
		names = append(names, decodeEvent(t, m).Records[0].EventName)
	}
	if got, want := strings.Join(names, ","), "ObjectCreated:Copy,ObjectCreated:CompleteMultipartUpload"; got != want {
		t.Errorf("events: got %s want %s", got, want)
	}
}

func TestNotificationConfigurationViaSDK(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	if _, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("removals")}); err != nil {
		t.Fatal(err)
	}
	arn := e.srv.SQS().QueueARN("removals")
	_, err := e.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String("herald"),
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			Id: aws.String("removed-json"), QueueArn: aws.String(arn), Events: []s3types.Event{"s3:ObjectRemoved:*"},
			Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{
				{Name: s3types.FilterRuleNamePrefix, Value: aws.String("logs/")}, {Name: s3types.FilterRuleNameSuffix, Value: aws.String(".json")}}}},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.s3.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String("herald")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.QueueConfigurations) != 1 || aws.ToString(got.QueueConfigurations[0].Id) != "removed-json" || len(got.QueueConfigurations[0].Filter.Key.FilterRules) != 2 {
		t.Fatalf("configuration read back: %+v", got.QueueConfigurations)
	}
	msgs := e.drain(t, "removals")
	if len(msgs) != 1 || !strings.Contains(msgs[0], "s3:TestEvent") {
		t.Fatalf("test event: %v", msgs)
	}
	for _, k := range []string{"logs/a.json", "logs/b.txt", "other/c.json"} {
		if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("herald"), Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
	}
	msgs = e.drain(t, "removals")
	if len(msgs) != 1 {
		t.Fatalf("removal events: got %d want 1: %v", len(msgs), msgs)
	}
	assertSameShape(t, []byte(msgs[0]), "s3-event-objectremoved-delete.json")
	if r := decodeEvent(t, msgs[0]).Records[0]; r.EventName != "ObjectRemoved:Delete" || r.S3.Object.Key != "logs/a.json" {
		t.Errorf("removal event: %s", msgs[0])
	}
	// The default queue no longer gets uploads: the configuration was replaced.
	e.drain(t, "herald-events")
	if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("uploads/x"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	if msgs := e.drain(t, "herald-events"); len(msgs) != 0 {
		t.Errorf("replaced configuration still notifies: %v", msgs)
	}
	// A destination that does not exist is refused, and nothing changes.
	_, err = e.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String("herald"),
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			QueueArn: aws.String(e.srv.SQS().QueueARN("missing")), Events: []s3types.Event{"s3:ObjectCreated:*"}}}},
	})
	if got, want := apiCode(err), "InvalidArgument"; got != want {
		t.Errorf("missing queue: got %q want %q", got, want)
	}
}

// TestNotificationSurvivesRestart checks the configuration persists and a
// restart on the same data dir does not send a second test event.
func TestNotificationSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		srv, err := New(Config{Notify: heraldNotify, DataDir: dir, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		n, err := srv.S3().BucketNotification("herald")
		if err != nil || n == nil || len(n.Queues) != 2 {
			t.Fatalf("run %d: notification %+v, %v", i, n, err)
		}
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := New(Config{Notify: heraldNotify, DataDir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	e := &testEnv{srv: srv}
	ts := newTestServer(srv)
	defer ts.Close()
	e.sqs = sqsClient(ts.URL)
	if msgs := e.drain(t, "herald-events"); len(msgs) != 1 {
		t.Fatalf("test events after 3 starts: got %d want 1", len(msgs))
	}
}

var _ = io.EOF
