package sqs

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fuzzService is one service per fuzz target with a pre-made queue "f", so
// inputs reach the message paths. SyncNone keeps iterations fast.
func fuzzService(f *testing.F) *Service {
	svc := newTestService(f, f.TempDir(), SyncNone)
	if _, err := svc.CreateQueue(context.Background(), "f", nil); err != nil {
		f.Fatal(err)
	}
	return svc
}

// serveFuzz runs one request with a short deadline (long polls end fast)
// and fails on a 5xx answer unless the deadline caused it.
func serveFuzz(t *testing.T, svc *Service, req *http.Request) *httptest.ResponseRecorder {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	svc.ServeHTTP(rec, req.WithContext(ctx))
	if rec.Code >= 500 && ctx.Err() == nil {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	return rec
}

func FuzzJSONRequest(f *testing.F) {
	seeds := []struct{ action, body string }{
		{"CreateQueue", `{"QueueName":"q","Attributes":{"VisibilityTimeout":"5","RedrivePolicy":"{\"deadLetterTargetArn\":\"arn:aws:sqs:us-east-1:000000000000:f\",\"maxReceiveCount\":\"2\"}"}}`},
		{"SendMessage", `{"QueueUrl":"http://h/000000000000/f","MessageBody":"hi","DelaySeconds":0,"MessageAttributes":{"a":{"DataType":"Number","StringValue":"1"},"b":{"DataType":"Binary","BinaryValue":"AAE="}}}`},
		{"SendMessageBatch", `{"QueueUrl":"/000000000000/f","Entries":[{"Id":"a","MessageBody":"x"},{"Id":"b","MessageBody":"y","DelaySeconds":900}]}`},
		{"ReceiveMessage", `{"QueueUrl":"/000000000000/f","MaxNumberOfMessages":10,"VisibilityTimeout":0,"MessageSystemAttributeNames":["All"],"MessageAttributeNames":["a.*"]}`},
		{"DeleteMessage", `{"QueueUrl":"/000000000000/f","ReceiptHandle":"AQAAAAAAAAABAAAAAAAAAAEAAAAAAAAAAQ"}`},
		{"ChangeMessageVisibilityBatch", `{"QueueUrl":"/000000000000/f","Entries":[{"Id":"a","ReceiptHandle":"x","VisibilityTimeout":3}]}`},
		{"GetQueueAttributes", `{"QueueUrl":"/000000000000/f","AttributeNames":["All"]}`},
		{"SetQueueAttributes", `{"QueueUrl":"/000000000000/f","Attributes":{"MaximumMessageSize":"1024"}}`},
		{"ListQueues", `{"MaxResults":1,"NextToken":"Zg"}`},
		{"SendMessage", `{"QueueUrl":7}`},
		{"SendMessage", `[`},
	}
	for _, s := range seeds {
		f.Add(s.action, []byte(s.body))
	}
	svc := fuzzService(f)
	f.Fuzz(func(t *testing.T, action string, body []byte) {
		if action == "DeleteQueue" || action == "PurgeQueue" {
			action = "GetQueueUrl" // keep the shared queue around
		}
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
		req.Header.Set("X-Amz-Target", "AmazonSQS."+action)
		req.Header.Set("Content-Type", jsonContentType)
		rec := serveFuzz(t, svc, req)
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("invalid JSON answer: %q", rec.Body.String())
		}
	})
}

func FuzzQueryRequest(f *testing.F) {
	for _, s := range []string{
		"Action=CreateQueue&QueueName=q2&Attribute.1.Name=DelaySeconds&Attribute.1.Value=1&Tag.1.Key=k&Tag.1.Value=v",
		"Action=SendMessage&QueueUrl=%2F000000000000%2Ff&MessageBody=x&MessageAttribute.1.Name=a&MessageAttribute.1.Value.DataType=Binary&MessageAttribute.1.Value.BinaryValue=AAE%3D",
		"Action=SendMessageBatch&QueueUrl=/000000000000/f&SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=b&SendMessageBatchRequestEntry.2.Id=a",
		"Action=ReceiveMessage&QueueUrl=/000000000000/f&AttributeName.1=All&MessageAttributeName.1=All&MaxNumberOfMessages=10&VisibilityTimeout=0",
		"Action=DeleteMessageBatch&QueueUrl=/000000000000/f&DeleteMessageBatchRequestEntry.99999999999999999999.Id=a",
		"Action=ChangeMessageVisibility&QueueUrl=/000000000000/f&ReceiptHandle=%00&VisibilityTimeout=-1",
		"Action=GetQueueAttributes&QueueUrl=/000000000000/f&AttributeName.1=All",
		"Action=ListQueues&QueueNamePrefix=f&MaxResults=0",
		"%zz&&==",
	} {
		f.Add(s)
	}
	svc := fuzzService(f)
	f.Fuzz(func(t *testing.T, form string) {
		if strings.Contains(form, "DeleteQueue") || strings.Contains(form, "PurgeQueue") {
			return
		}
		req := httptest.NewRequest(http.MethodPost, "/000000000000/f", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := serveFuzz(t, svc, req)
		if !strings.HasPrefix(rec.Body.String(), "<?xml") {
			t.Fatalf("answer is not XML: %q", rec.Body.String())
		}
	})
}

// Query list parsing on its own: indexes out of range are ignored, order
// follows the index.
func TestQueryMembers(t *testing.T) {
	p := params{"A.2": {"two"}, "A.1": {"one"}, "A.0": {"zero"}, "A.x": {"x"}, "A.1001": {"big"}, "B.1": {"other"}}
	if got := strings.Join(p.list("A"), ","); got != "one,two" {
		t.Errorf("list = %q, want one,two", got)
	}
}
