package processor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/processor/convert"
)

// TestMetricsAfterMixedRun: after a completed job, two failed ones (one in
// the converter, one before any pipeline) and a malformed message that
// ends in the dead-letter queue, every processor metric counts exactly
// that; each job wrote exactly one INFO log line.
func TestMetricsAfterMixedRun(t *testing.T) {
	wrong := convert.OutputSpec{Name: "copy", Converter: convert.ConverterCommand, Format: "png", Command: []string{"cp", "{input}", "{output}"}}
	pipelines := append([]convert.Pipeline{{Name: "gifs", KeyPrefix: "uploads/", MIME: []string{"image/gif"}, Outputs: []convert.OutputSpec{wrong}}},
		convert.DefaultPipelines()...)
	e := newEnv(t, func(c *Config) {
		c.Pipelines = pipelines
		c.Visibility, c.Heartbeat = 2*time.Second, 500*time.Millisecond
	})
	ctx := context.Background()
	lowerMaxReceive(t, e, 2)
	dir := t.TempDir()

	ok := e.upload(t, "ok.png", "image/png", testkit.ReadFile(t, testkit.Image(t, dir, "ok.png", 300, 200)))
	gif := e.upload(t, "anim.gif", "image/gif", testkit.ReadFile(t, testkit.Image(t, dir, "anim.gif", 30, 20)))
	txt := e.putUpload(t, "notes.txt", []byte("not an image at all"))
	if _, err := e.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(e.queueURL), MessageBody: aws.String(`{"not":"an event"}`)}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ok: event.TypeCompleted, gif: event.TypeFailed, txt: event.TypeFailed}
	for id, typ := range want {
		if final, _ := e.events.final(t, id, 60*time.Second); final.Type != typ {
			t.Fatalf("job %s: %s %+v, want %s", id, final.Type, final.Error, typ)
		}
	}
	testkit.WaitFor(t, 30*time.Second, "dead-letter queue depth 1 in the metrics", func() bool {
		v, _ := testkit.Metric(t, e.metrics, "herald_processor_queue_messages", map[string]string{"queue": "dead_letter", "state": "visible"})
		return v == 1
	})
	waitQueueEmpty(t, e)
	e.stop()

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"herald_processor_jobs_total", map[string]string{"app": testApp, "pipeline": "image", "outcome": "accepted"}, 1},
		{"herald_processor_jobs_total", map[string]string{"app": testApp, "pipeline": "image", "outcome": "completed"}, 1},
		{"herald_processor_jobs_total", map[string]string{"app": testApp, "pipeline": "gifs", "outcome": "accepted"}, 1},
		{"herald_processor_jobs_total", map[string]string{"app": testApp, "pipeline": "gifs", "outcome": "failed"}, 1},
		{"herald_processor_jobs_total", map[string]string{"app": testApp, "pipeline": "none", "outcome": "failed"}, 1},
		{"herald_processor_job_failures_total", map[string]string{"pipeline": "gifs", "code": "wrong_output_format"}, 1},
		{"herald_processor_job_failures_total", map[string]string{"pipeline": "none", "code": "unsupported_format"}, 1},
		{"herald_processor_job_duration_seconds", map[string]string{"pipeline": "image", "outcome": "completed"}, 1},
		{"herald_processor_job_duration_seconds", map[string]string{"pipeline": "gifs", "outcome": "failed"}, 1},
		{"herald_processor_conversion_duration_seconds", map[string]string{"converter": "image", "outcome": "ok"}, 4},
		{"herald_processor_conversion_duration_seconds", map[string]string{"converter": "command", "outcome": "failed"}, 1},
		{"herald_processor_conversions_running", nil, 0},
		{"herald_processor_conversions_waiting", nil, 0},
		// localaws's s3:TestEvent of a fresh bucket, three S3 events,
		// four output steps of the PNG, one of the GIF; the malformed
		// message twice (maxReceiveCount 2), never deleted.
		{"herald_processor_sqs_messages_received_total", nil, 11},
		{"herald_processor_sqs_messages_deleted_total", nil, 9},
		{"herald_processor_sqs_messages_redriven_total", nil, 1},
		{"herald_processor_queue_messages", map[string]string{"queue": "main", "state": "visible"}, 0},
		{"herald_processor_queue_messages", map[string]string{"queue": "dead_letter", "state": "visible"}, 1},
	}
	for _, tt := range tests {
		got, found := testkit.Metric(t, e.metrics, tt.name, tt.labels)
		if !found || got != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, got, found, tt.want)
		}
	}
	if cpu, _ := testkit.Metric(t, e.metrics, "herald_processor_converter_cpu_seconds_total", map[string]string{"converter": "image"}); cpu <= 0 {
		t.Errorf("converter CPU seconds = %v, want > 0", cpu)
	}

	// One INFO line per job, carrying the summary.
	for id, typ := range want {
		lines := e.logs.Matching(func(r map[string]any) bool { return r["level"] != "DEBUG" && r["job"] == id })
		if len(lines) != 1 {
			t.Errorf("job %s: %d log lines above DEBUG, want 1: %v", id, len(lines), lines)
			continue
		}
		l := lines[0]
		outcome := strings.TrimPrefix(typ, "job.")
		if l["msg"] != "job" || l["level"] != "INFO" || l["outcome"] != outcome || l["app"] != testApp || l["elapsed"] == nil || l["input_bytes"] == nil || l["outputs"] == nil {
			t.Errorf("job %s: log line %v", id, l)
		}
		if outcome == "failed" && (l["code"] == nil || l["error"] == nil) {
			t.Errorf("job %s: failure line without code and error: %v", id, l)
		}
	}
}

// lowerMaxReceive sets the queue's redrive policy to maxReceiveCount n and
// waits for the processor's sampler to learn it.
func lowerMaxReceive(t testing.TB, e *env, n int) {
	t.Helper()
	ctx := context.Background()
	attrs, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(e.dlqURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	arn := attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
	policy := `{"deadLetterTargetArn":"` + arn + `","maxReceiveCount":` + string(rune('0'+n)) + `}`
	if _, err := e.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(e.queueURL),
		Attributes: map[string]string{"RedrivePolicy": policy}}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the sampler to read the redrive policy", func() bool { return e.proc.maxReceive.Load() == int64(n) })
}

func TestParseRedrivePolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    redrivePolicy
		wantErr bool
	}{
		{"", redrivePolicy{}, false},
		{`{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"5"}`, redrivePolicy{"arn:aws:sqs:us-east-1:000000000000:dlq", 5}, false},
		{`{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":3}`, redrivePolicy{"arn:aws:sqs:us-east-1:000000000000:dlq", 3}, false},
		{`{"deadLetterTargetArn":"x","maxReceiveCount":0}`, redrivePolicy{}, true},
		{`{`, redrivePolicy{}, true},
	}
	for _, tt := range tests {
		got, err := parseRedrivePolicy(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseRedrivePolicy(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if name, acct, err := queueFromARN("arn:aws:sqs:eu-west-1:123456789012:herald-dlq"); name != "herald-dlq" || acct != "123456789012" || err != nil {
		t.Errorf("queueFromARN = %q %q %v", name, acct, err)
	}
	if _, _, err := queueFromARN("herald-dlq"); err == nil {
		t.Error("queueFromARN accepted a bare name")
	}
}
