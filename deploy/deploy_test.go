// Package deploy holds the AWS setup script and CloudFormation template;
// its tests run the script against localaws with the real aws CLI and
// check the template.
package deploy

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"gopkg.in/yaml.v3"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/localaws"
)

// TestSetupScriptAgainstLocalaws runs deploy/aws-setup.sh against localaws
// for a bucket and queue localaws did not create, then checks the result
// works: an object put under uploads/ produces a message in the queue.
func TestSetupScriptAgainstLocalaws(t *testing.T) {
	awsCLI := testkit.AWSCLI(t)
	srv, err := localaws.New(localaws.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, srv.Run)

	cmd := exec.CommandContext(ctx, "sh", "aws-setup.sh")
	cmd.Env = append(testkit.AWSCLIEnv(t.TempDir()), "AWS="+awsCLI, "ENDPOINT="+srv.URL(), "BUCKET=setup-test", "QUEUE=setup-events",
		"ORIGINS=https://app.example.com,http://localhost:8080")
	out, err := cmd.CombinedOutput()
	t.Logf("aws-setup.sh:\n%s", out)
	if err != nil {
		t.Fatalf("aws-setup.sh: %v", err)
	}
	// Twice: it must be idempotent.
	cmd2 := exec.CommandContext(ctx, "sh", "aws-setup.sh")
	cmd2.Env = cmd.Env
	if out, err := cmd2.CombinedOutput(); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}

	ac := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	s3c := s3.NewFromConfig(ac, func(o *s3.Options) { o.UsePathStyle = true })
	sqsc := sqs.NewFromConfig(ac)

	cors, err := s3c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: aws.String("setup-test")})
	if err != nil {
		t.Fatalf("GetBucketCors: %v", err)
	}
	if got := cors.CORSRules[0].AllowedOrigins; len(got) != 2 || got[0] != "https://app.example.com" {
		t.Errorf("CORS origins: got %v", got)
	}
	q, err := sqsc.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("setup-events")})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"other/ignored.txt", "uploads/demo/AAAAAAAAAAAAAAAAAAAAAA/job1/photo.png"} {
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("setup-test"), Key: aws.String(key),
			Body: strings.NewReader("x")}); err != nil {
			t.Fatalf("PutObject %s: %v", key, err)
		}
	}
	// S3 (and localaws) first send an s3:TestEvent per configuration; skip those.
	var bodies []string
	for end := time.Now().Add(10 * time.Second); len(bodies) == 0 && time.Now().Before(end); {
		r, err := sqsc.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range r.Messages {
			if b := aws.ToString(m.Body); strings.Contains(b, `"Records"`) {
				bodies = append(bodies, b)
			}
		}
	}
	if len(bodies) != 1 || !strings.Contains(bodies[0], "uploads/demo/AAAAAAAAAAAAAAAAAAAAAA/job1/photo.png") ||
		!strings.Contains(bodies[0], "ObjectCreated") {
		t.Fatalf("queue messages: got %q, want one ObjectCreated notification for the upload", bodies)
	}
	attrs, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{"RedrivePolicy", "Policy"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(attrs.Attributes["RedrivePolicy"], "setup-events-dlq") {
		t.Errorf("RedrivePolicy: got %q", attrs.Attributes["RedrivePolicy"])
	}
}

// TestCloudFormationTemplate parses the template (CloudFormation's short
// tags such as !Ref and !GetAtt included) and checks its resources.
func TestCloudFormationTemplate(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(".", "cloudformation.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		AWSTemplateFormatVersion string                    `yaml:"AWSTemplateFormatVersion"`
		Parameters               map[string]map[string]any `yaml:"Parameters"`
		Resources                map[string]struct {
			Type       string         `yaml:"Type"`
			Properties map[string]any `yaml:"Properties"`
		} `yaml:"Resources"`
		Outputs map[string]any `yaml:"Outputs"`
	}
	if err := yaml.Unmarshal(b, &tmpl); err != nil {
		t.Fatalf("cloudformation.yaml: %v", err)
	}
	if tmpl.AWSTemplateFormatVersion != "2010-09-09" {
		t.Errorf("format version: got %q", tmpl.AWSTemplateFormatVersion)
	}
	want := map[string]string{
		"Bucket": "AWS::S3::Bucket", "Queue": "AWS::SQS::Queue", "DeadLetterQueue": "AWS::SQS::Queue",
		"QueuePolicy": "AWS::SQS::QueuePolicy", "ProcessorRole": "AWS::IAM::Role", "WebRole": "AWS::IAM::Role",
		"BrowserRole": "AWS::IAM::Role", "PublisherPolicy": "AWS::IoT::Policy",
	}
	for name, typ := range want {
		r, ok := tmpl.Resources[name]
		if !ok || r.Type != typ {
			t.Errorf("resource %s: got %q, want %s", name, r.Type, typ)
		}
	}
	if _, ok := tmpl.Resources["Bucket"].Properties["NotificationConfiguration"]; !ok {
		t.Error("Bucket has no NotificationConfiguration")
	}
	if _, ok := tmpl.Resources["Bucket"].Properties["CorsConfiguration"]; !ok {
		t.Error("Bucket has no CorsConfiguration")
	}
	if r := tmpl.Resources["Bucket"]; r.Properties != nil {
		// The queue policy must exist before S3 validates the notification.
		raw := string(b)
		if !strings.Contains(raw, "DependsOn: QueuePolicy") {
			t.Error("Bucket must DependsOn QueuePolicy")
		}
	}
}
