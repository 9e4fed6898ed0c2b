package main

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/processor"
	"github.com/heraldgw/herald/processor/convert"
)

// startJobs wires what starts and runs jobs. With the web or processor
// role it reaches S3 and SQS and offers the intake (upload grants, job
// submission), which needs S3 only, so a web-only process grants uploads
// too; with the processor role it also runs the processor.
func (g *gateway) startJobs(ctx context.Context) error {
	if !g.cfg.has(RoleWeb) && !g.cfg.has(RoleProcessor) {
		return nil
	}
	clients, err := g.awsClients(ctx)
	if err != nil {
		return err
	}
	g.urls = append(g.urls, "s3", first(clients.Endpoint, "aws"), "queue", clients.QueueURL)
	pc := g.cfg.Processor
	pipelines := pc.Convert.Pipelines
	if len(pipelines) == 0 {
		pipelines = convert.DefaultPipelines()
	}
	presign := s3.NewPresignClient(clients.S3)
	intake, err := processor.NewIntake(processor.IntakeConfig{
		S3: clients.S3, Presigner: presign, Queue: clients.SQS, QueueURL: clients.QueueURL,
		Bucket: clients.Bucket, SourceBuckets: pc.SourceBuckets, Pipelines: pipelines, Apps: g.reg,
		Logger: g.log.With("part", "intake"),
	})
	if err != nil {
		return err
	}
	g.uploads, g.multipart, g.jobs, g.jobStatus = intake, intake, intake, intake
	if !g.cfg.has(RoleProcessor) {
		return nil
	}
	if g.pub == nil {
		return errors.New("the processor role needs somewhere to publish job events: run it with the broker role, or set HERALD_BROKER_URL (a gateway's MQTT listener or an upstream broker; see docs/scaling.md)")
	}
	ccfg := pc.Convert
	ccfg.Pipelines = pipelines
	eng, err := convert.New(ctx, ccfg, g.log.With("part", "convert"))
	if err != nil {
		return err
	}
	pub := g.pub
	if e, ok := g.pub.(*bridge.Embedded); ok {
		pub = e.ForJobs()
	}
	proc, err := processor.New(processor.Config{
		S3: clients.S3, Presigner: presign, Queue: clients.SQS, QueueURL: clients.QueueURL,
		Bucket: clients.Bucket, Converter: eng, Pipelines: pipelines, Publisher: pub, Apps: g.reg,
		Workers: pc.Workers, Conversions: pc.Conversions, Prefetch: pc.Prefetch, MaxHold: pc.MaxHold, InputCacheBytes: pc.InputCacheBytes,
		Visibility: pc.Visibility, DrainTimeout: g.cfg.ShutdownTimeout, QueueSampleInterval: pc.QueueSampleInterval,
		Metrics: g.metrics, Logger: g.log.With("part", "processor"),
	})
	if err != nil {
		return err
	}
	g.run(ctx, "processor", proc.Run)
	return nil
}
