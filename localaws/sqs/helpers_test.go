package sqs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestService opens a Service on dir and closes it when the test ends.
func newTestService(t testing.TB, dir string, policy SyncPolicy) *Service {
	t.Helper()
	svc, err := New(Config{DataDir: dir, Logger: quietLogger(), Sync: policy})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// newSDKClient returns a real SDK client for endpoint with test/test keys
// and no retries, so error cases surface at once.
func newSDKClient(endpoint string) *awssqs.Client {
	return awssqs.New(awssqs.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		RetryMaxAttempts: 1,
	})
}

// startTestServer serves a fresh Service over HTTP and returns it with an
// SDK client pointed at it.
func startTestServer(t testing.TB) (*Service, *httptest.Server, *awssqs.Client) {
	t.Helper()
	return startTestServerWith(t, SyncEveryCommit)
}

func startTestServerWith(t testing.TB, policy SyncPolicy) (*Service, *httptest.Server, *awssqs.Client) {
	t.Helper()
	svc := newTestService(t, t.TempDir(), policy)
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	svc.SetBaseURL(srv.URL)
	return svc, srv, newSDKClient(srv.URL)
}

func createQueue(t testing.TB, c *awssqs.Client, name string, attrs map[string]string) string {
	t.Helper()
	out, err := c.CreateQueue(context.Background(), &awssqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("CreateQueue %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

// errorCode returns the API error code the SDK reports for err.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
