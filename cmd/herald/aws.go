package main

import (
	"context"
	"errors"
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

// awsClients returns the SDK clients. In local mode a process with the web
// role hosts localaws itself (unless aws.localawsEmbed is false); other
// processes reach the one at the configured address.
func (g *gateway) awsClients(ctx context.Context) (*awsClients, error) {
	cfg := g.cfg.AWS
	var ac aws.Config
	out := &awsClients{Bucket: cfg.Bucket}
	if cfg.Mode == AWSReal {
		var err error
		ac, err = awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.Region))
		if err != nil {
			return nil, fmt.Errorf("aws config: %w", err)
		}
	} else {
		out.Endpoint = "http://" + cfg.LocalawsAddr
		if g.cfg.has(RoleWeb) && *cfg.LocalawsEmbed {
			lc := g.cfg.localaws(g.origins, g.log.With("part", "localaws"))
			lc.Metrics = g.metrics
			srv, err := localaws.New(lc)
			if err != nil {
				return nil, err
			}
			if err := srv.Listen(); err != nil {
				return nil, errors.Join(listenError(err, cfg.LocalawsAddr, settingLocalawsAddr), srv.Close())
			}
			g.run(ctx, "localaws", srv.Run)
			out.Endpoint = srv.URL()
		}
		ac = aws.Config{
			Region:       cfg.Region,
			Credentials:  credentials.NewStaticCredentialsProvider(cfg.LocalawsAccessKey, cfg.LocalawsSecretKey, ""),
			BaseEndpoint: aws.String(out.Endpoint),
		}
	}
	out.S3 = s3.NewFromConfig(ac, func(o *s3.Options) { o.UsePathStyle = cfg.Mode == AWSLocal })
	out.SQS = sqs.NewFromConfig(ac)
	if strings.HasPrefix(cfg.Queue, "https://") || strings.HasPrefix(cfg.Queue, "http://") {
		out.QueueURL = cfg.Queue
		return out, nil
	}
	res, err := out.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(cfg.Queue)})
	if err != nil {
		return nil, fmt.Errorf("queue %q: %w", cfg.Queue, err)
	}
	out.QueueURL = aws.ToString(res.QueueUrl)
	return out, nil
}

// localaws is the localaws configuration this gateway's settings imply.
func (c *Config) localaws(origins []string, log *slog.Logger) localaws.Config {
	return localaws.Config{
		Addr: c.AWS.LocalawsAddr, DataDir: filepath.Join(c.DataDir, "localaws"), Region: c.AWS.Region,
		AccessKey: c.AWS.LocalawsAccessKey, SecretKey: c.AWS.LocalawsSecretKey, Bucket: c.AWS.Bucket,
		Queue: queueName(c.AWS.Queue), CORSOrigins: origins, Notify: notifyRules(),
		AbortIncompleteAfter: c.AWS.LocalawsAbortIncompleteAfter, Logger: log,
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
