package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func TestSDKQueueLifecycle(t *testing.T) {
	svc, srv, c := startTestServer(t)
	ctx := context.Background()

	url := createQueue(t, c, "jobs", map[string]string{"VisibilityTimeout": "45"})
	if want := srv.URL + "/000000000000/jobs"; url != want {
		t.Errorf("QueueUrl = %q, want %q", url, want)
	}
	// Same attributes: idempotent. Different: QueueAlreadyExists.
	if again := createQueue(t, c, "jobs", map[string]string{"VisibilityTimeout": "45"}); again != url {
		t.Errorf("idempotent CreateQueue = %q, want %q", again, url)
	}
	_, err := c.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("jobs"), Attributes: map[string]string{"VisibilityTimeout": "46"}})
	var exists *types.QueueNameExists
	if !errors.As(err, &exists) || errorCode(err) != "QueueAlreadyExists" {
		t.Errorf("CreateQueue with other attributes: err = %v (code %q), want QueueNameExists/QueueAlreadyExists", err, errorCode(err))
	}
	createQueue(t, c, "jobs-dlq", nil)
	createQueue(t, c, "other", nil)

	got, err := c.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String("jobs")})
	if err != nil || aws.ToString(got.QueueUrl) != url {
		t.Fatalf("GetQueueUrl = %v, %v", got, err)
	}

	list, err := c.ListQueues(ctx, &awssqs.ListQueuesInput{QueueNamePrefix: aws.String("jobs")})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{url, srv.URL + "/000000000000/jobs-dlq"}; fmt.Sprint(list.QueueUrls) != fmt.Sprint(want) {
		t.Errorf("ListQueues(prefix jobs) = %v, want %v", list.QueueUrls, want)
	}
	// Pagination, one per page.
	var paged []string
	p := awssqs.NewListQueuesPaginator(c, &awssqs.ListQueuesInput{MaxResults: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page.QueueUrls...)
	}
	if len(paged) != 3 {
		t.Errorf("paginated ListQueues = %v, want 3 queues", paged)
	}

	attrs, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"VisibilityTimeout": "45", "DelaySeconds": "0", "MessageRetentionPeriod": "345600", "MaximumMessageSize": "262144",
		"ReceiveMessageWaitTimeSeconds": "0", "QueueArn": svc.QueueARN("jobs"), "ApproximateNumberOfMessages": "0",
		"ApproximateNumberOfMessagesNotVisible": "0", "ApproximateNumberOfMessagesDelayed": "0",
	} {
		if got := attrs.Attributes[k]; got != want {
			t.Errorf("attribute %s = %q, want %q", k, got, want)
		}
	}
	if ts, _ := strconv.ParseInt(attrs.Attributes["CreatedTimestamp"], 10, 64); ts < time.Now().Add(-time.Hour).Unix() {
		t.Errorf("CreatedTimestamp = %q", attrs.Attributes["CreatedTimestamp"])
	}

	redrive := fmt.Sprintf(`{"deadLetterTargetArn":"%s","maxReceiveCount":"3"}`, svc.QueueARN("jobs-dlq"))
	_, err = c.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: &url, Attributes: map[string]string{
		"DelaySeconds": "2", "ReceiveMessageWaitTimeSeconds": "1", "MessageRetentionPeriod": "120", "MaximumMessageSize": "2048", "RedrivePolicy": redrive}})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err = c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{"DelaySeconds", "RedrivePolicy", "MaximumMessageSize"}})
	if err != nil {
		t.Fatal(err)
	}
	wantRedrive := fmt.Sprintf(`{"deadLetterTargetArn":"%s","maxReceiveCount":3}`, svc.QueueARN("jobs-dlq"))
	if attrs.Attributes["DelaySeconds"] != "2" || attrs.Attributes["RedrivePolicy"] != wantRedrive || attrs.Attributes["MaximumMessageSize"] != "2048" || len(attrs.Attributes) != 3 {
		t.Errorf("after SetQueueAttributes: %v", attrs.Attributes)
	}
	src, err := c.ListDeadLetterSourceQueues(ctx, &awssqs.ListDeadLetterSourceQueuesInput{QueueUrl: aws.String(srv.URL + "/000000000000/jobs-dlq")})
	if err != nil || fmt.Sprint(src.QueueUrls) != fmt.Sprint([]string{url}) {
		t.Errorf("ListDeadLetterSourceQueues = %v, %v", src, err)
	}

	if _, err := c.TagQueue(ctx, &awssqs.TagQueueInput{QueueUrl: &url, Tags: map[string]string{"team": "media", "env": "dev"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagQueue(ctx, &awssqs.UntagQueueInput{QueueUrl: &url, TagKeys: []string{"env"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListQueueTags(ctx, &awssqs.ListQueueTagsInput{QueueUrl: &url})
	if err != nil || fmt.Sprint(tags.Tags) != "map[team:media]" {
		t.Errorf("ListQueueTags = %v, %v", tags, err)
	}

	if _, err := c.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: &url}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String("jobs")})
	var missing *types.QueueDoesNotExist
	if !errors.As(err, &missing) || errorCode(err) != "AWS.SimpleQueueService.NonExistentQueue" {
		t.Errorf("GetQueueUrl after delete: err = %v (code %q), want QueueDoesNotExist", err, errorCode(err))
	}
	if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x")}); !errors.As(err, &missing) {
		t.Errorf("SendMessage to deleted queue: err = %v, want QueueDoesNotExist", err)
	}
	if _, err := svc.Enqueue(ctx, "jobs", "x"); !errors.Is(err, ErrQueueDoesNotExist) {
		t.Errorf("Enqueue to deleted queue: err = %v, want ErrQueueDoesNotExist", err)
	}
}

func TestSDKSendReceiveDelete(t *testing.T) {
	svc, _, c := startTestServer(t)
	ctx := context.Background()
	url := createQueue(t, c, "work", nil)

	attrs := map[string]types.MessageAttributeValue{
		"SellerName": {DataType: aws.String("String"), StringValue: aws.String("Example Store")},
		"count":      {DataType: aws.String("Number.int"), StringValue: aws.String("12")},
		"blob":       {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 255}},
	}
	body := "hello ünïcode \U0001F600 <xml> & \"quotes\"\r\n"
	sent, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: &body, MessageAttributes: attrs,
		MessageSystemAttributes: map[string]types.MessageSystemAttributeValue{
			"AWSTraceHeader": {DataType: aws.String("String"), StringValue: aws.String("Root=1-5759e988-bd862e3fe1be46a994272793")}}})
	if err != nil {
		t.Fatal(err) // the SDK has already checked MD5OfMessageBody
	}
	if sent.MD5OfMessageAttributes == nil || sent.MD5OfMessageSystemAttributes == nil {
		t.Fatalf("SendMessage output lacks attribute MD5s: %+v", sent)
	}
	id, err := svc.Enqueue(ctx, "work", `{"Records":[]}`)
	if err != nil || id == "" {
		t.Fatalf("Enqueue = %q, %v", id, err)
	}

	recv, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"}})
	if err != nil {
		t.Fatal(err) // the SDK has checked MD5OfBody of each message
	}
	if len(recv.Messages) != 2 {
		t.Fatalf("received %d messages, want 2", len(recv.Messages))
	}
	m := recv.Messages[0]
	if aws.ToString(m.MessageId) != aws.ToString(sent.MessageId) || aws.ToString(m.Body) != body {
		t.Errorf("first message = %s %q, want %s %q", aws.ToString(m.MessageId), aws.ToString(m.Body), aws.ToString(sent.MessageId), body)
	}
	if aws.ToString(m.MD5OfMessageAttributes) != aws.ToString(sent.MD5OfMessageAttributes) {
		t.Errorf("receive MD5OfMessageAttributes %s != send %s", aws.ToString(m.MD5OfMessageAttributes), aws.ToString(sent.MD5OfMessageAttributes))
	}
	if got := m.MessageAttributes["blob"].BinaryValue; string(got) != "\x00\x01\x02\xff" {
		t.Errorf("binary attribute = %v", got)
	}
	if got := aws.ToString(m.MessageAttributes["count"].DataType); got != "Number.int" {
		t.Errorf("custom data type = %q", got)
	}
	for _, k := range []string{"SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp", "SenderId", "AWSTraceHeader"} {
		if m.Attributes[k] == "" {
			t.Errorf("system attribute %s missing: %v", k, m.Attributes)
		}
	}
	if m.Attributes["ApproximateReceiveCount"] != "1" || m.Attributes["SenderId"] != "test" {
		t.Errorf("system attributes = %v", m.Attributes)
	}

	// Attribute filter: only "count", MD5 covers just that one.
	if _, err := c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatal(err)
	}
	recv, err = c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, MessageAttributeNames: []string{"co.*", "count"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{"ApproximateReceiveCount"}})
	if err != nil || len(recv.Messages) != 1 {
		t.Fatalf("filtered receive = %v, %v", recv, err)
	}
	m = recv.Messages[0]
	if len(m.MessageAttributes) != 1 || len(m.Attributes) != 1 || m.Attributes["ApproximateReceiveCount"] != "2" {
		t.Errorf("filtered receive attributes = %v / %v", m.MessageAttributes, m.Attributes)
	}
	if want := md5OfAttributes(map[string]AttributeValue{"count": {DataType: "Number.int", StringValue: strp("12")}}); aws.ToString(m.MD5OfMessageAttributes) != want {
		t.Errorf("filtered MD5OfMessageAttributes = %s, want %s", aws.ToString(m.MD5OfMessageAttributes), want)
	}
	if _, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, c, url, 0, 1, 0) // the Enqueue'd message is still in flight
}

// checkCounts compares the Approximate* counters of a queue.
func checkCounts(t *testing.T, c *awssqs.Client, url string, visible, notVisible, delayed int) {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &awssqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible, types.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s/%s/%s", out.Attributes["ApproximateNumberOfMessages"], out.Attributes["ApproximateNumberOfMessagesNotVisible"], out.Attributes["ApproximateNumberOfMessagesDelayed"])
	if want := fmt.Sprintf("%d/%d/%d", visible, notVisible, delayed); got != want {
		t.Errorf("visible/notVisible/delayed = %s, want %s", got, want)
	}
}

func TestSDKBatches(t *testing.T) {
	_, _, c := startTestServer(t)
	ctx := context.Background()
	url := createQueue(t, c, "batch", nil)

	var entries []types.SendMessageBatchRequestEntry
	for i := range 10 {
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprintf("m%d", i)), MessageBody: aws.String(fmt.Sprintf("body %d", i)),
			MessageAttributes: map[string]types.MessageAttributeValue{"i": {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(i))}}})
	}
	entries[9].MessageBody = aws.String("") // invalid: fails alone
	sent, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
	if err != nil {
		t.Fatal(err) // includes the SDK's per-entry MD5 check
	}
	if len(sent.Successful) != 9 || len(sent.Failed) != 1 || aws.ToString(sent.Failed[0].Id) != "m9" || aws.ToString(sent.Failed[0].Code) != "InvalidParameterValue" || !sent.Failed[0].SenderFault {
		t.Fatalf("SendMessageBatch: %d ok, failed %+v", len(sent.Successful), sent.Failed)
	}

	recv, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 60})
	if err != nil || len(recv.Messages) != 9 {
		t.Fatalf("ReceiveMessage = %d messages, %v", len(recv.Messages), err)
	}
	var vis []types.ChangeMessageVisibilityBatchRequestEntry
	for i, m := range recv.Messages[:3] {
		vis = append(vis, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(fmt.Sprint("v", i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
	}
	vis = append(vis, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String("bad"), ReceiptHandle: aws.String("garbage"), VisibilityTimeout: 0})
	cv, err := c.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: &url, Entries: vis})
	if err != nil || len(cv.Successful) != 3 || len(cv.Failed) != 1 || aws.ToString(cv.Failed[0].Code) != "ReceiptHandleIsInvalid" {
		t.Fatalf("ChangeMessageVisibilityBatch = %+v, %v", cv, err)
	}
	checkCounts(t, c, url, 3, 6, 0)

	var del []types.DeleteMessageBatchRequestEntry
	for i, m := range recv.Messages[3:] {
		del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("d", i)), ReceiptHandle: m.ReceiptHandle})
	}
	del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String("bad"), ReceiptHandle: aws.String("not-a-handle")})
	dr, err := c.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: del})
	if err != nil || len(dr.Successful) != 6 || len(dr.Failed) != 1 || aws.ToString(dr.Failed[0].Code) != "ReceiptHandleIsInvalid" {
		t.Fatalf("DeleteMessageBatch = %+v, %v", dr, err)
	}
	checkCounts(t, c, url, 3, 0, 0)

	if _, err := c.PurgeQueue(ctx, &awssqs.PurgeQueueInput{QueueUrl: &url}); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, c, url, 0, 0, 0)

	// Delay: per message and per queue.
	if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("later"), DelaySeconds: 600}); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, c, url, 0, 0, 1)
}

func TestSDKErrors(t *testing.T) {
	_, _, c := startTestServer(t)
	ctx := context.Background()
	url := createQueue(t, c, "errs", nil)
	missing := "http://127.0.0.1:1/000000000000/nope"
	big := strings.Repeat("x", 262145)
	tenPlusOne := make([]types.DeleteMessageBatchRequestEntry, 11)
	for i := range tenPlusOne {
		tenPlusOne[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("e", i)), ReceiptHandle: aws.String("h")}
	}
	tests := []struct {
		name     string
		call     func() error
		wantType any // pointer to the SDK error type expected, or nil
		wantCode string
	}{
		{"no queue", func() error {
			_, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &missing})
			return err
		}, new(*types.QueueDoesNotExist), "AWS.SimpleQueueService.NonExistentQueue"},
		{"MaxNumberOfMessages 11", func() error {
			_, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 11})
			return err
		}, nil, "InvalidParameterValue"},
		{"WaitTimeSeconds 21", func() error {
			_, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 21})
			return err
		}, nil, "InvalidParameterValue"},
		{"empty body", func() error {
			_, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("")})
			return err
		}, nil, "InvalidParameterValue"},
		{"oversize body", func() error {
			_, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: &big})
			return err
		}, nil, "InvalidParameterValue"},
		{"invalid characters", func() error {
			_, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("nul \x00 byte")})
			return err
		}, new(*types.InvalidMessageContents), "InvalidMessageContents"},
		{"DelaySeconds 901", func() error {
			_, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"), DelaySeconds: 901})
			return err
		}, nil, "InvalidParameterValue"},
		{"bad attribute type", func() error {
			_, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"),
				MessageAttributes: map[string]types.MessageAttributeValue{"a": {DataType: aws.String("Float"), StringValue: aws.String("1")}}})
			return err
		}, nil, "InvalidParameterValue"},
		{"bad receipt handle", func() error {
			_, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: aws.String("garbage")})
			return err
		}, new(*types.ReceiptHandleIsInvalid), "ReceiptHandleIsInvalid"},
		{"empty batch", func() error {
			_, err := c.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: []types.DeleteMessageBatchRequestEntry{}})
			return err
		}, new(*types.EmptyBatchRequest), "AWS.SimpleQueueService.EmptyBatchRequest"},
		{"too many entries", func() error {
			_, err := c.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: tenPlusOne})
			return err
		}, new(*types.TooManyEntriesInBatchRequest), "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"},
		{"duplicate ids", func() error {
			_, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: &url, Entries: []types.SendMessageBatchRequestEntry{
				{Id: aws.String("a"), MessageBody: aws.String("1")}, {Id: aws.String("a"), MessageBody: aws.String("2")}}})
			return err
		}, new(*types.BatchEntryIdsNotDistinct), "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"},
		{"bad batch id", func() error {
			_, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: &url, Entries: []types.SendMessageBatchRequestEntry{
				{Id: aws.String("no spaces"), MessageBody: aws.String("1")}}})
			return err
		}, new(*types.InvalidBatchEntryId), "AWS.SimpleQueueService.InvalidBatchEntryId"},
		{"unknown attribute", func() error {
			_, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{"Colour"}})
			return err
		}, new(*types.InvalidAttributeName), "InvalidAttributeName"},
		{"attribute out of range", func() error {
			_, err := c.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: &url, Attributes: map[string]string{"VisibilityTimeout": "99999"}})
			return err
		}, new(*types.InvalidAttributeValue), "InvalidAttributeValue"},
		{"redrive to missing queue", func() error {
			_, err := c.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: &url, Attributes: map[string]string{
				"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:absent","maxReceiveCount":2}`}})
			return err
		}, nil, "InvalidParameterValue"},
		{"bad queue name", func() error {
			_, err := c.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("has space")})
			return err
		}, nil, "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("got no error")
			}
			if got := errorCode(err); got != tt.wantCode {
				t.Errorf("error code = %q, want %q (err %v)", got, tt.wantCode, err)
			}
			if tt.wantType != nil && !errors.As(err, tt.wantType) {
				t.Errorf("errors.As(%T) failed for %v", tt.wantType, err)
			}
		})
	}
}

func TestSDKVisibilityAndStaleHandles(t *testing.T) {
	_, _, c := startTestServer(t)
	ctx := context.Background()
	url := createQueue(t, c, "vis", nil)
	if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("once")}); err != nil {
		t.Fatal(err)
	}
	first := receiveOne(t, c, url, 1, 0)
	// Invisible until the timeout ends.
	if out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url}); err != nil || len(out.Messages) != 0 {
		t.Fatalf("receive during visibility timeout = %v, %v", out, err)
	}
	// Redelivered by a long poll that wakes when the timeout ends.
	second := receiveOne(t, c, url, 60, 10)
	if aws.ToString(second.MessageId) != aws.ToString(first.MessageId) || aws.ToString(second.ReceiptHandle) == aws.ToString(first.ReceiptHandle) {
		t.Fatalf("redelivery: id %s/%s handle equal %v", aws.ToString(first.MessageId), aws.ToString(second.MessageId), aws.ToString(second.ReceiptHandle) == aws.ToString(first.ReceiptHandle))
	}
	if second.Attributes["ApproximateReceiveCount"] != "2" {
		t.Errorf("ApproximateReceiveCount = %q, want 2", second.Attributes["ApproximateReceiveCount"])
	}
	// The stale handle: delete succeeds but does nothing; visibility change fails.
	if _, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: first.ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage(stale) = %v, want success", err)
	}
	_, err := c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: first.ReceiptHandle, VisibilityTimeout: 0})
	if errorCode(err) != "InvalidParameterValue" {
		t.Errorf("ChangeMessageVisibility(stale) = %v, want InvalidParameterValue", err)
	}
	checkCounts(t, c, url, 0, 1, 0) // the new delivery is untouched
	// The current handle works.
	if _, err := c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: second.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatal(err)
	}
	third := receiveOne(t, c, url, 60, 0)
	if _, err := c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: second.ReceiptHandle, VisibilityTimeout: 5}); errorCode(err) != "InvalidParameterValue" {
		t.Errorf("ChangeMessageVisibility(second, now stale) = %v", err)
	}
	if _, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: third.ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, c, url, 0, 0, 0)
	// Deleting an already deleted message succeeds, as on SQS.
	if _, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: third.ReceiptHandle}); err != nil {
		t.Errorf("DeleteMessage(deleted) = %v", err)
	}
}

// receiveOne receives exactly one message with all system attributes.
func receiveOne(t *testing.T, c *awssqs.Client, url string, visibility, wait int32) types.Message {
	t.Helper()
	out, err := c.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{QueueUrl: &url, VisibilityTimeout: visibility, WaitTimeSeconds: wait,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 {
		t.Fatalf("received %d messages, want 1", len(out.Messages))
	}
	return out.Messages[0]
}

func TestSDKDeadLetterRedrive(t *testing.T) {
	svc, _, c := startTestServer(t)
	ctx := context.Background()
	dlq := createQueue(t, c, "orders-dlq", nil)
	// VisibilityTimeout 0 on the queue: the SDK omits a zero VisibilityTimeout
	// from ReceiveMessage, so the per-request value cannot express it.
	src := createQueue(t, c, "orders", map[string]string{"VisibilityTimeout": "0",
		"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":"%s","maxReceiveCount":2}`, svc.QueueARN("orders-dlq"))})
	sent, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &src, MessageBody: aws.String("poison")})
	if err != nil {
		t.Fatal(err)
	}
	receiveOne(t, c, src, 0, 0)
	receiveOne(t, c, src, 0, 0)
	// The third receive exceeds maxReceiveCount: the message moves instead.
	if out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &src}); err != nil || len(out.Messages) != 0 {
		t.Fatalf("third receive = %v, %v; want no message", out, err)
	}
	checkCounts(t, c, src, 0, 0, 0)
	got := receiveOne(t, c, dlq, 30, 0)
	if aws.ToString(got.MessageId) != aws.ToString(sent.MessageId) || aws.ToString(got.Body) != "poison" {
		t.Errorf("DLQ message = %s %q", aws.ToString(got.MessageId), aws.ToString(got.Body))
	}
}

func TestSDKLongPollWakesOnSend(t *testing.T) {
	_, _, c := startTestServer(t)
	ctx := context.Background()
	url := createQueue(t, c, "wake", nil)
	got := make(chan *awssqs.ReceiveMessageOutput, 1)
	go func() {
		// Waits up to 20 s; without a wake-up on send it would come back empty.
		out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 20})
		if err != nil {
			t.Error(err)
		}
		got <- out
	}()
	time.Sleep(100 * time.Millisecond) // let the receive start waiting
	if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("ping")}); err != nil {
		t.Fatal(err)
	}
	out := <-got
	if out == nil || len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != "ping" {
		t.Fatalf("long poll returned %+v", out)
	}
	// Queue-level ReceiveMessageWaitTimeSeconds applies when the request has none.
	if _, err := c.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: &url, Attributes: map[string]string{"ReceiveMessageWaitTimeSeconds": "20"}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		out, _ := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url})
		got <- out
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("pong")}); err != nil {
		t.Fatal(err)
	}
	if out := <-got; out == nil || len(out.Messages) != 1 {
		t.Fatalf("queue-default long poll returned %+v", out)
	}
}

func TestRetentionExpiry(t *testing.T) {
	svc, _, c := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	url := createQueue(t, c, "short", map[string]string{"MessageRetentionPeriod": "60"})
	if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("old")}); err != nil {
		t.Fatal(err)
	}
	svc.expire(time.Now()) // not yet due
	checkCounts(t, c, url, 1, 0, 0)
	svc.expire(time.Now().Add(61 * time.Second)) // what Run does once a second
	checkCounts(t, c, url, 0, 0, 0)

	done := make(chan error)
	go func() { done <- svc.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v after cancel, want nil", err)
	}
}
