package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/heraldgw/herald/internal/testkit"
)

// TestLocalAWSCommand runs `herald localaws` alone and reaches both of its
// services with the real SDK, as the aws CLI or another program would.
func TestLocalAWSCommand(t *testing.T) {
	addr := testkit.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	env := map[string]string{"HERALD_LOCALAWS_ADDR": addr}
	go func() {
		done <- run(ctx, []string{"localaws", "--data-dir", t.TempDir()}, io.Discard, func(k string) string { return env[k] })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("herald localaws: %v", err)
		}
	}()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), BaseEndpoint: aws.String("http://" + addr)}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	sqsc := sqs.NewFromConfig(cfg)
	var out *s3.ListBucketsOutput
	testkit.WaitFor(t, 10*time.Second, "localaws reachable", func() bool {
		var err error
		out, err = s3c.ListBuckets(context.Background(), &s3.ListBucketsInput{})
		return err == nil
	})
	if len(out.Buckets) != 1 || aws.ToString(out.Buckets[0].Name) != "herald" {
		t.Fatalf("buckets: got %+v, want the default bucket", out.Buckets)
	}
	q, err := sqsc.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String("herald-events-dlq")})
	if err != nil || aws.ToString(q.QueueUrl) == "" {
		t.Fatalf("dead-letter queue: got %v %v", q, err)
	}
}
