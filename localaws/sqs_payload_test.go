package localaws

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// An SQS request may carry X-Amz-Content-Sha256; the signature then covers
// that header, and the body must hash to it, or a captured request could be
// replayed with another body (another message) under the same signature.
func TestSQSPayloadHashIsChecked(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	qu, err := e.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(DefaultQueue)})
	if err != nil {
		t.Fatal(err)
	}
	form := func(body string) string {
		return url.Values{"Action": {"SendMessage"}, "Version": {"2012-11-05"}, "QueueUrl": {aws.ToString(qu.QueueUrl)}, "MessageBody": {body}}.Encode()
	}
	signed, sent := form("signed body"), form("swapped body")
	status, b := postSwappedBody(t, ctx, e.url+"/", "application/x-www-form-urlencoded", "sqs", signed, sent)
	if got, want := status, http.StatusForbidden; got != want {
		t.Fatalf("status %d, want %d: %s", got, want, b)
	}
	// The queue also holds the bucket's s3:TestEvent.
	out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qu.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range out.Messages {
		if body := aws.ToString(m.Body); body == "swapped body" {
			t.Fatalf("message %q enqueued by a body its signature does not cover", body)
		}
	}
}
