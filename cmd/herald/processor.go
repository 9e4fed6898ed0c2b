package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/processor"
	"github.com/heraldgw/herald/processor/convert"
	"github.com/heraldgw/herald/web"
)

// startProcessor wires the processor role: it returns what the web role
// offers browsers and services (upload grants, job submission). Without the
// processor role a web process still grants uploads (it needs S3 only).
func startProcessor(ctx context.Context, cfg *Config, p *parts, clients *awsClients, pub bridge.Publisher, log *slog.Logger) (web.Uploader, web.JobSubmitter, error) {
	pipelines := cfg.Processor.Convert.Pipelines
	if len(pipelines) == 0 {
		pipelines = convert.DefaultPipelines()
	}
	presign := s3.NewPresignClient(clients.S3)
	intake, err := processor.NewIntake(processor.IntakeConfig{
		S3: clients.S3, Presigner: presign, Queue: clients.SQS, QueueURL: clients.QueueURL,
		Bucket: clients.Bucket, SourceBuckets: cfg.Processor.SourceBuckets, Pipelines: pipelines,
		Logger: log.With("part", "intake"),
	})
	if err != nil {
		return nil, nil, err
	}
	if cfg.has("processor") {
		if pub == nil {
			return nil, nil, errors.New("the processor role needs somewhere to publish job events: run it with the broker role, or set HERALD_BROKER_URL (a gateway's MQTT listener or an upstream broker; see docs/scaling.md)")
		}
		ccfg := cfg.Processor.Convert
		ccfg.Pipelines = pipelines
		eng, err := convert.New(ctx, ccfg, log.With("part", "convert"))
		if err != nil {
			return nil, nil, err
		}
		proc, err := processor.New(processor.Config{
			S3: clients.S3, Presigner: presign, Queue: clients.SQS, QueueURL: clients.QueueURL,
			Bucket: clients.Bucket, Converter: eng, Pipelines: pipelines, Publisher: pub,
			Workers: cfg.Processor.Workers, Conversions: cfg.Processor.Conversions, InputCacheBytes: cfg.Processor.InputCacheBytes,
			Visibility: cfg.Processor.Visibility, DrainTimeout: cfg.ShutdownTimeout,
			Logger: log.With("part", "processor"),
		})
		if err != nil {
			return nil, nil, err
		}
		p.run(ctx, "processor", log, proc.Run)
	}
	return intake, intake, nil
}
