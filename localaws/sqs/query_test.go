package sqs

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/heraldgw/herald/internal/testkit"
)

// postForm sends a raw Query-protocol request and returns status and body.
func postForm(t *testing.T, endpoint string, form url.Values) (int, []byte) {
	t.Helper()
	resp, err := http.Post(endpoint, "application/x-www-form-urlencoded; charset=utf-8", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type xmlError struct {
	Type    string `xml:"Error>Type"`
	Code    string `xml:"Error>Code"`
	Message string `xml:"Error>Message"`
}

type xmlMessage struct {
	MessageId              string
	ReceiptHandle          string
	MD5OfBody              string
	Body                   string
	Attribute              []struct{ Name, Value string }
	MD5OfMessageAttributes string
	MessageAttribute       []struct {
		Name  string
		Value struct{ StringValue, BinaryValue, DataType string }
	}
}

func TestQueryProtocol(t *testing.T) {
	_, srv, _ := startTestServer(t)
	status, body := postForm(t, srv.URL, url.Values{"Action": {"CreateQueue"}, "Version": {"2012-11-05"}, "QueueName": {"q1"},
		"Attribute.1.Name": {"VisibilityTimeout"}, "Attribute.1.Value": {"40"}, "Tag.1.Key": {"team"}, "Tag.1.Value": {"media"}})
	var created struct {
		QueueUrl string `xml:"CreateQueueResult>QueueUrl"`
		ReqID    string `xml:"ResponseMetadata>RequestId"`
	}
	if err := xml.Unmarshal(body, &created); status != 200 || err != nil || created.QueueUrl != srv.URL+"/000000000000/q1" || created.ReqID == "" {
		t.Fatalf("CreateQueue: %d %s (%v)", status, body, err)
	}
	qurl := created.QueueUrl

	status, body = postForm(t, srv.URL, url.Values{"Action": {"SendMessage"}, "QueueUrl": {qurl}, "MessageBody": {"a & b <c>"},
		"MessageAttribute.1.Name": {"SellerName"}, "MessageAttribute.1.Value.DataType": {"String"}, "MessageAttribute.1.Value.StringValue": {"Example Store"},
		"MessageAttribute.2.Name": {"raw"}, "MessageAttribute.2.Value.DataType": {"Binary"}, "MessageAttribute.2.Value.BinaryValue": {"AAEC"}})
	var sent struct {
		MessageId, MD5OfMessageBody, MD5OfMessageAttributes string
	}
	var sentWrap struct {
		R *struct {
			MessageId, MD5OfMessageBody, MD5OfMessageAttributes string
		} `xml:"SendMessageResult"`
	}
	if err := xml.Unmarshal(body, &sentWrap); status != 200 || err != nil || sentWrap.R == nil {
		t.Fatalf("SendMessage: %d %s", status, body)
	}
	sent = *sentWrap.R
	if sent.MD5OfMessageBody != md5Hex([]byte("a & b <c>")) || sent.MD5OfMessageAttributes == "" {
		t.Errorf("SendMessage MD5s: %+v", sent)
	}

	// Sent to the queue URL path, without a QueueUrl parameter.
	status, body = postForm(t, qurl, url.Values{"Action": {"ReceiveMessage"}, "AttributeName.1": {"All"}, "MessageAttributeName.1": {"All"}, "MaxNumberOfMessages": {"5"}})
	var recv struct {
		Messages []xmlMessage `xml:"ReceiveMessageResult>Message"`
	}
	if err := xml.Unmarshal(body, &recv); status != 200 || err != nil || len(recv.Messages) != 1 {
		t.Fatalf("ReceiveMessage: %d %s", status, body)
	}
	m := recv.Messages[0]
	if m.Body != "a & b <c>" || m.MessageId != sent.MessageId || m.MD5OfMessageAttributes != sent.MD5OfMessageAttributes || len(m.MessageAttribute) != 2 || len(m.Attribute) < 4 {
		t.Errorf("received %+v", m)
	}

	status, body = postForm(t, srv.URL, url.Values{"Action": {"GetQueueAttributes"}, "QueueUrl": {qurl}, "AttributeName.1": {"VisibilityTimeout"}, "AttributeName.2": {"ApproximateNumberOfMessagesNotVisible"}})
	var attrs struct {
		Attrs []struct{ Name, Value string } `xml:"GetQueueAttributesResult>Attribute"`
	}
	if err := xml.Unmarshal(body, &attrs); status != 200 || err != nil || len(attrs.Attrs) != 2 {
		t.Fatalf("GetQueueAttributes: %d %s", status, body)
	}

	status, body = postForm(t, srv.URL, url.Values{"Action": {"DeleteMessageBatch"}, "QueueUrl": {qurl},
		"DeleteMessageBatchRequestEntry.1.Id": {"ok"}, "DeleteMessageBatchRequestEntry.1.ReceiptHandle": {m.ReceiptHandle},
		"DeleteMessageBatchRequestEntry.2.Id": {"bad"}, "DeleteMessageBatchRequestEntry.2.ReceiptHandle": {"zzz"}})
	var del struct {
		OK     []struct{ Id string }                    `xml:"DeleteMessageBatchResult>DeleteMessageBatchResultEntry"`
		Failed []struct{ Id, Code, SenderFault string } `xml:"DeleteMessageBatchResult>BatchResultErrorEntry"`
	}
	if err := xml.Unmarshal(body, &del); status != 200 || err != nil || len(del.OK) != 1 || len(del.Failed) != 1 || del.Failed[0].Code != "ReceiptHandleIsInvalid" {
		t.Fatalf("DeleteMessageBatch: %d %s", status, body)
	}

	errorCases := []struct {
		name       string
		form       url.Values
		wantStatus int
		wantCode   string
	}{
		{"no queue", url.Values{"Action": {"GetQueueUrl"}, "QueueName": {"absent"}}, 400, "AWS.SimpleQueueService.NonExistentQueue"},
		{"missing body", url.Values{"Action": {"SendMessage"}, "QueueUrl": {qurl}}, 400, "MissingParameter"},
		{"missing action", url.Values{"QueueUrl": {qurl}}, 400, "MissingParameter"},
		{"unknown action", url.Values{"Action": {"Frobnicate"}}, 400, "InvalidAction"},
		{"bad integer", url.Values{"Action": {"ReceiveMessage"}, "QueueUrl": {qurl}, "MaxNumberOfMessages": {"ten"}}, 400, "InvalidParameterValue"},
		{"stale handle", url.Values{"Action": {"DeleteMessage"}, "QueueUrl": {qurl}, "ReceiptHandle": {"zzz"}}, 404, "ReceiptHandleIsInvalid"},
		{"queue exists", url.Values{"Action": {"CreateQueue"}, "QueueName": {"q1"}, "Attribute.1.Name": {"VisibilityTimeout"}, "Attribute.1.Value": {"41"}}, 400, "QueueAlreadyExists"},
		{"empty batch", url.Values{"Action": {"SendMessageBatch"}, "QueueUrl": {qurl}}, 400, "AWS.SimpleQueueService.EmptyBatchRequest"},
	}
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			status, body := postForm(t, srv.URL, tt.form)
			var e xmlError
			if err := xml.Unmarshal(body, &e); err != nil {
				t.Fatalf("unmarshal %s: %v", body, err)
			}
			if status != tt.wantStatus || e.Code != tt.wantCode || e.Type != "Sender" {
				t.Errorf("got %d %s/%s, want %d %s", status, e.Type, e.Code, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

// TestJSONErrorWire checks the error wire format directly: the SDK relies on
// __type and on the x-amzn-query-error header of SQS's awsQueryCompatible
// JSON protocol.
func TestJSONErrorWire(t *testing.T) {
	_, srv, _ := startTestServer(t)
	tests := []struct {
		target, body string
		wantStatus   int
		wantType     string
		wantHeader   string
	}{
		{"AmazonSQS.GetQueueUrl", `{"QueueName":"absent"}`, 400, "com.amazonaws.sqs#QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue;Sender"},
		{"AmazonSQS.CreateQueue", `{}`, 400, "com.amazonaws.sqs#MissingParameter", "MissingParameter;Sender"},
		{"AmazonSQS.CreateQueue", `{"QueueName":`, 400, "com.amazonaws.sqs#SerializationException", "SerializationException;Sender"},
		{"AmazonSQS.Nope", `{}`, 400, "com.amazonaws.sqs#InvalidAction", "InvalidAction;Sender"},
	}
	for _, tt := range tests {
		t.Run(tt.target+tt.body, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(tt.body))
			req.Header.Set("X-Amz-Target", tt.target)
			req.Header.Set("Content-Type", "application/x-amz-json-1.0")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			json.NewDecoder(resp.Body).Decode(&e)
			if got := resp.Header.Get("X-Amzn-Query-Error"); resp.StatusCode != tt.wantStatus || e.Type != tt.wantType || got != tt.wantHeader || e.Message == "" {
				t.Errorf("got %d %q %q %q", resp.StatusCode, e.Type, got, e.Message)
			}
		})
	}
}

// TestAWSCLI drives the service with the aws CLI v2 (Query protocol).
func TestAWSCLI(t *testing.T) {
	cli := testkit.AWSCLI(t)
	_, srv, _ := startTestServer(t)
	home := t.TempDir()
	run := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command(cli, append([]string{"--endpoint-url", srv.URL, "--region", "us-east-1", "--output", "json", "sqs"}, args...)...)
		cmd.Env = testkit.AWSCLIEnv(home)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("aws sqs %v: %v\n%s", args, err, stderr.String())
		}
		var v map[string]any
		if len(bytes.TrimSpace(out)) > 0 {
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("aws sqs %v output %q: %v", args, out, err)
			}
		}
		return v
	}
	created := run("create-queue", "--queue-name", "cli-q", "--attributes", "VisibilityTimeout=20")
	qurl, _ := created["QueueUrl"].(string)
	if qurl != srv.URL+"/000000000000/cli-q" {
		t.Fatalf("create-queue = %v", created)
	}
	sent := run("send-message", "--queue-url", qurl, "--message-body", "from the cli",
		"--message-attributes", `{"kind":{"DataType":"String","StringValue":"test"}}`)
	if sent["MD5OfMessageBody"] != md5Hex([]byte("from the cli")) || sent["MessageId"] == "" {
		t.Fatalf("send-message = %v", sent)
	}
	recv := run("receive-message", "--queue-url", qurl, "--attribute-names", "All", "--message-attribute-names", "All", "--wait-time-seconds", "1")
	msgs, _ := recv["Messages"].([]any)
	if len(msgs) != 1 {
		t.Fatalf("receive-message = %v", recv)
	}
	m := msgs[0].(map[string]any)
	if m["Body"] != "from the cli" || m["MessageId"] != sent["MessageId"] || m["MD5OfMessageAttributes"] != sent["MD5OfMessageAttributes"] {
		t.Errorf("received %v", m)
	}
	run("delete-message", "--queue-url", qurl, "--receipt-handle", m["ReceiptHandle"].(string))
	attrs := run("get-queue-attributes", "--queue-url", qurl, "--attribute-names", "All")
	if a, _ := attrs["Attributes"].(map[string]any); a["ApproximateNumberOfMessages"] != "0" || a["ApproximateNumberOfMessagesNotVisible"] != "0" || a["VisibilityTimeout"] != "20" {
		t.Errorf("get-queue-attributes = %v", attrs)
	}
}
