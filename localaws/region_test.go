package localaws

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// A client configured for another region is refused, as AWS refuses it,
// so a wrong region in the gateway's config shows up locally rather than
// only after the switch to real AWS.
func TestWrongRegionRefused(t *testing.T) {
	e := newEnv(t)
	other := awsConfig("test", "test", nil)
	other.Region = "eu-west-1"
	s3c := s3.NewFromConfig(other, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(e.url)
		o.UsePathStyle = true
	})
	_, err := s3c.ListBuckets(ctxT(t), &s3.ListBucketsInput{})
	if got := apiCode(err); got != "AuthorizationHeaderMalformed" {
		t.Errorf("S3 in eu-west-1: got %q (%v), want AuthorizationHeaderMalformed", got, err)
	}
	sqsc := sqs.NewFromConfig(other, func(o *sqs.Options) { o.BaseEndpoint = aws.String(e.url) })
	_, err = sqsc.ListQueues(ctxT(t), &sqs.ListQueuesInput{})
	if got := apiCode(err); got != "IncompleteSignature" {
		t.Errorf("SQS in eu-west-1: got %q (%v), want IncompleteSignature", got, err)
	}
	// The configured region still works.
	if _, err := e.s3.ListBuckets(ctxT(t), &s3.ListBucketsInput{}); err != nil {
		t.Fatalf("S3 in us-east-1: %v", err)
	}
}
