package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/localaws"
)

// awsClients are the AWS SDK clients a process uses, pointed at real AWS or
// at localaws; nothing downstream knows which.
type awsClients struct {
	S3       *s3.Client
	SQS      *sqs.Client
	Bucket   string
	QueueURL string
	Endpoint string // localaws URL in local mode, "" on AWS
}

// startAWS returns the SDK clients. In local mode a process with the web role
// hosts localaws itself (unless aws.localawsEmbed is false); other processes
// reach the one at the configured address.
func startAWS(ctx context.Context, cfg *Config, p *parts, origins []string, log *slog.Logger) (*awsClients, error) {
	var ac aws.Config
	out := &awsClients{Bucket: cfg.AWS.Bucket}
	if cfg.AWS.Mode == "aws" {
		var err error
		ac, err = awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.AWS.Region))
		if err != nil {
			return nil, fmt.Errorf("aws config: %w", err)
		}
	} else {
		out.Endpoint = "http://" + cfg.AWS.LocalAddr
		if cfg.has("web") && *cfg.AWS.LocalEmbed {
			srv, err := localaws.New(cfg.localaws(origins, log.With("part", "localaws")))
			if err != nil {
				return nil, err
			}
			if err := srv.Start(ctx); err != nil {
				_ = srv.Close()
				return nil, err
			}
			p.run(ctx, "localaws", log, func(ctx context.Context) error {
				<-ctx.Done()
				return srv.Close()
			})
			out.Endpoint = srv.URL()
		}
		ac = aws.Config{
			Region:       cfg.AWS.Region,
			Credentials:  credentials.NewStaticCredentialsProvider(cfg.AWS.AccessKey, cfg.AWS.SecretKey, ""),
			BaseEndpoint: aws.String(out.Endpoint),
		}
	}
	out.S3 = s3.NewFromConfig(ac, func(o *s3.Options) { o.UsePathStyle = cfg.AWS.Mode == "local" })
	out.SQS = sqs.NewFromConfig(ac)
	if strings.HasPrefix(cfg.AWS.Queue, "https://") || strings.HasPrefix(cfg.AWS.Queue, "http://") {
		out.QueueURL = cfg.AWS.Queue
		return out, nil
	}
	res, err := out.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(cfg.AWS.Queue)})
	if err != nil {
		return nil, fmt.Errorf("queue %q: %w", cfg.AWS.Queue, err)
	}
	out.QueueURL = aws.ToString(res.QueueUrl)
	return out, nil
}

// localaws is the localaws configuration this gateway's settings imply.
func (c *Config) localaws(origins []string, log *slog.Logger) localaws.Config {
	return localaws.Config{
		Addr: c.AWS.LocalAddr, DataDir: filepath.Join(c.DataDir, "localaws"), Region: c.AWS.Region,
		AccessKey: c.AWS.AccessKey, SecretKey: c.AWS.SecretKey, Bucket: c.AWS.Bucket,
		Queue: queueName(c.AWS.Queue), CORSOrigins: origins, Notify: notifyRules(), Logger: log,
	}
}

// notifyRules report what the processor consumes: uploads, and the
// manifests that end an external converter's outputs.
func notifyRules() []localaws.NotifyRule {
	return []localaws.NotifyRule{
		{ID: "herald-uploads", Prefix: job.UploadsPrefix},
		{ID: "herald-manifests", Prefix: job.ConvertedPrefix, Suffix: job.ManifestName},
	}
}

// queueName accepts a queue name or URL and returns the name.
func queueName(q string) string {
	if i := strings.LastIndex(q, "/"); i >= 0 {
		return q[i+1:]
	}
	return q
}
