package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/processor/convert"
	"github.com/heraldgw/herald/processor/sniff"
)

// start sniffs the input, selects the pipeline, publishes job.accepted and
// enqueues one output step per output.
func (p *Processor) start(ctx context.Context, st *State) error {
	if ended, err := p.replayFinal(ctx, st); ended || err != nil {
		return err
	}
	if wait, err := p.admit(ctx, st); wait || err != nil {
		return err
	}
	in := st.Input
	head, err := p.cfg.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(in.Bucket), Key: aws.String(in.Key)})
	switch {
	case isNotFound(err):
		p.log.Warn("input gone before its job started", "job", st.JobID, "bucket", in.Bucket, "key", in.Key)
		return nil
	case err != nil:
		return fmt.Errorf("head input s3://%s/%s: %w", in.Bucket, in.Key, err)
	}
	st.Input.Size = aws.ToInt64(head.ContentLength)
	if st.Input.Size == 0 {
		return p.failStart(ctx, st, convert.CodeCorruptInput, "input is empty")
	}
	obj, err := p.cfg.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(in.Bucket), Key: aws.String(in.Key),
		Range: aws.String(fmt.Sprintf("bytes=0-%d", sniff.HeaderSize-1))})
	if err != nil {
		return fmt.Errorf("read head of input s3://%s/%s: %w", in.Bucket, in.Key, err)
	}
	b, err := io.ReadAll(io.LimitReader(obj.Body, sniff.HeaderSize))
	obj.Body.Close()
	if err != nil {
		return fmt.Errorf("read head of input s3://%s/%s: %w", in.Bucket, in.Key, err)
	}
	typ := sniff.Bytes(b)
	st.Input.MIME = typ.MIME
	pl, err := convert.SelectPipeline(p.cfg.Pipelines, p.routeKey(st), typ.MIME)
	if err != nil {
		msg := "input type not recognised"
		if typ.Known() {
			msg = "no pipeline converts " + typ.MIME
		}
		return p.failStart(ctx, st, convert.CodeUnsupportedFormat, msg)
	}
	st.Pipeline = pl.Name
	st.Outputs = st.Outputs[:0]
	for _, o := range pl.Outputs {
		st.Outputs = append(st.Outputs, o.FileName())
	}
	if err := p.putRecord(ctx, st); err != nil {
		return err
	}
	if err := p.publish(ctx, p.envelope(st, event.TypeAccepted, st.stepID(), 1, &event.Progress{Done: 0, Total: len(st.Outputs)})); err != nil {
		return err
	}
	next := make([]*State, 0, len(st.Outputs))
	for _, file := range st.Outputs {
		s := *st
		s.Step, s.Output = StepOutput, file
		next = append(next, &s)
	}
	if err := sendStates(ctx, p.cfg.Queue, p.cfg.QueueURL, next); err != nil {
		return err
	}
	p.metrics.jobs.WithLabelValues(st.App, pl.Name, outcomeAccepted).Inc()
	p.log.LogAttrs(ctx, slog.LevelDebug, "job accepted", slog.String("job", st.JobID), slog.String("key", in.Key),
		slog.String("type", typ.MIME), slog.String("pipeline", pl.Name), slog.Int("outputs", len(st.Outputs)))
	return nil
}

// failStart records the job and ends it with job.failed: the start step
// found it cannot be converted.
func (p *Processor) failStart(ctx context.Context, st *State, code convert.Code, msg string) error {
	if err := p.putRecord(ctx, st); err != nil {
		return err
	}
	return p.fail(ctx, st, code, msg)
}

// routeKey is the key pipelines are selected by. A submitted object is
// routed as if it had been uploaded, since pipelines match upload keys.
func (p *Processor) routeKey(st *State) string {
	if st.Source == SourceSubmit {
		return st.job().UploadKey(job.SafeFilename(path.Base(st.Input.Key)))
	}
	return st.Input.Key
}

// output makes one output, records it, reports progress and, when it is
// the last one, completes the job.
func (p *Processor) output(ctx context.Context, st *State) error {
	p.log.LogAttrs(ctx, slog.LevelDebug, "output step started", slog.String("job", st.JobID), slog.String("output", st.Output))
	if ended, err := p.replayFinal(ctx, st); ended || err != nil {
		return err
	}
	spec, ok := p.spec(st.Pipeline, st.Output)
	if !ok {
		return p.fail(ctx, st, convert.CodeConverterFailed, fmt.Sprintf("pipeline %s has no output %s in this processor's configuration", st.Pipeline, st.Output))
	}
	_, stored, err := p.records.output(ctx, st.job(), st.Output, spec.Files != "")
	switch {
	case err != nil:
		return err
	case stored:
		// Made before a crash or by a duplicate step: go straight to the
		// fan-in.
	default:
		failed, err := p.convertSibling(ctx, st, spec)
		if err != nil || failed {
			return err
		}
	}
	return p.fanIn(ctx, st)
}

// convertSibling is convertAndStore as one of the job's running steps: if
// another step ends the job meanwhile (fails it), this one is stopped at
// once, its converter killed, and its message is done with.
func (p *Processor) convertSibling(ctx context.Context, st *State, spec convert.OutputSpec) (failed bool, err error) {
	sctx, leave := p.siblings.join(ctx, st.JobID, st.Output)
	defer leave()
	go p.watch(sctx, st)
	failed, err = p.convertAndStore(sctx, st, spec)
	if err != nil && stopped(sctx) && ctx.Err() == nil {
		p.log.LogAttrs(ctx, slog.LevelInfo, "step stopped: its job already ended", slog.String("job", st.JobID),
			slog.String("output", st.Output))
		return true, nil
	}
	return failed, err
}

// fanIn reports progress after an output was stored and completes the job
// when it was the last one. seq is 1 + the number of outputs stored, so
// two steps that find the same outputs stored would report the same seq:
// only the step whose output is the latest stored in pipeline order
// reports it, and the job's steps in this process take turns, so what one
// process publishes for a job has strictly increasing seq. (Steps of one
// job in several processes still publish unique seqs, but may arrive out
// of order: clients keep the highest.)
func (p *Processor) fanIn(ctx context.Context, st *State) error {
	defer p.jobTurns.take(st.JobID)()
	outs, done, last, cost, err := p.storedOutputs(ctx, st)
	if err != nil {
		return err
	}
	if done == len(st.Outputs) {
		return p.complete(ctx, st, outs, cost)
	}
	if last != st.Output {
		return nil
	}
	return p.publish(ctx, p.envelope(st, event.TypeProgress, st.stepID(), int64(1+done), &event.Progress{Done: done, Total: len(st.Outputs)}))
}

// spec returns the output of the pipeline that writes file, with the
// pipeline's limits folded in.
func (p *Processor) spec(pipeline, file string) (convert.OutputSpec, bool) {
	for _, pl := range p.cfg.Pipelines {
		if pl.Name == pipeline {
			return pl.Output(file)
		}
	}
	return convert.OutputSpec{}, false
}

// isGroup reports whether file is a glob output of the pipeline, recorded
// as a group.
func (p *Processor) isGroup(pipeline, file string) bool {
	spec, ok := p.spec(pipeline, file)
	return ok && spec.Files != ""
}

// convertAndStore downloads the input, converts it and stores the output
// with its record in the object's metadata (a group output: each part,
// then the group record). failed reports that the job ended as
// job.failed.
func (p *Processor) convertAndStore(ctx context.Context, st *State, spec convert.OutputSpec) (failed bool, err error) {
	dir, cleanup, err := convert.NewWorkDir(p.cfg.WorkDir)
	if err != nil {
		return false, err
	}
	defer func() {
		_ = cleanup()
		if p.inputs != nil {
			p.inputs.sweep() // the input this step shared may be unused now
		}
	}()
	input := filepath.Join(dir, "input")
	start := time.Now()
	cached, err := p.download(ctx, st.Input, input)
	if err != nil {
		if isNotFound(err) {
			return true, p.fail(ctx, st, convert.CodeConverterFailed, "the input object no longer exists")
		}
		return false, err
	}
	downloaded := time.Now()
	p.log.LogAttrs(ctx, slog.LevelDebug, "conversion started", slog.String("job", st.JobID), slog.String("output", st.Output))
	out, cost, err := p.convert(ctx, st, convert.Request{InputPath: input, WorkDir: dir, Output: spec})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return false, err
		}
		return true, p.failAfter(ctx, st, convert.CodeOf(err), err.Error(), cost)
	}
	converted := time.Now()
	if out.Parts == nil {
		err = p.storeFile(ctx, st, st.Output, out, cost)
	} else {
		err = p.storeGroup(ctx, st, out.Parts, cost)
	}
	if err != nil {
		return false, err
	}
	// The phase times show where a step's wall time goes; convert
	// includes the wait for a conversion slot.
	p.log.LogAttrs(ctx, slog.LevelDebug, "output stored", slog.String("job", st.JobID), slog.String("output", st.Output),
		slog.Int64("bytes", out.Bytes), slog.Int("parts", len(out.Parts)), slog.Bool("input_cached", cached),
		slog.Duration("download", downloaded.Sub(start)), slog.Duration("convert", converted.Sub(downloaded)),
		slog.Duration("store", time.Since(converted)), slog.Duration("elapsed", time.Since(start)))
	return false, nil
}

// DefaultOutputPartSize is Config.OutputPartSize's default.
const DefaultOutputPartSize = 16 << 20

// storeFile stores one converted file as output file of the job, its
// record in the object's metadata. A big output goes up in parts (a
// single PUT is limited to 5 GiB and restarts from zero when it fails),
// each part read from the file as it is sent.
func (p *Processor) storeFile(ctx context.Context, st *State, file string, out convert.Output, cost usage) error {
	key := st.job().OutputKey(file)
	f, err := os.Open(out.Path)
	if err != nil {
		return fmt.Errorf("open output %s: %w", file, err)
	}
	defer f.Close()
	rec := event.Output{Name: out.Name, Key: key, ContentType: out.ContentType, Width: out.Width, Height: out.Height,
		Duration: out.Duration.Seconds(), Bytes: out.Bytes}
	in := &s3.PutObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key), Body: f,
		ContentLength: aws.Int64(out.Bytes), ContentType: aws.String(out.ContentType), Metadata: outputMeta(st.JobID, rec, cost)}
	if out.Bytes < p.cfg.OutputPartSize {
		_, err = p.cfg.S3.PutObject(ctx, in)
	} else {
		_, err = manager.NewUploader(p.cfg.S3, func(u *manager.Uploader) {
			u.PartSize, u.Concurrency = p.cfg.OutputPartSize, 2
		}).Upload(ctx, in)
	}
	if err != nil {
		return fmt.Errorf("store output s3://%s/%s: %w", p.cfg.Bucket, key, err)
	}
	return nil
}

// storeGroup stores each part of a glob output, then the group record
// that marks the output done.
func (p *Processor) storeGroup(ctx context.Context, st *State, parts []convert.Output, cost usage) error {
	g := groupRecord{Job: st.JobID, ConvertMS: cost.convert.Milliseconds(), CPUMS: cost.cpu.Milliseconds()}
	for _, part := range parts {
		file := filepath.Base(part.Path)
		if err := p.storeFile(ctx, st, file, part, usage{}); err != nil {
			return err
		}
		g.Outputs = append(g.Outputs, event.Output{Name: part.Name, Key: st.job().OutputKey(file), ContentType: part.ContentType,
			Width: part.Width, Height: part.Height, Duration: part.Duration.Seconds(), Bytes: part.Bytes})
	}
	return p.putJSON(ctx, p.records.groupKey(st.job(), st.Output), g, false)
}

// download places the input object at dst: from the input cache when
// another step of this process already fetched the same version (or, for
// an input too large to keep, another step of this process still holds
// it), else from S3.
func (p *Processor) download(ctx context.Context, in StateInput, dst string) (cached bool, err error) {
	if p.inputs == nil {
		_, err := writeFile(ctx, dst, p.fetcher(in, ""))
		return false, err
	}
	head, err := p.cfg.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(in.Bucket), Key: aws.String(in.Key)})
	if err != nil {
		return false, fmt.Errorf("head input s3://%s/%s: %w", in.Bucket, in.Key, err)
	}
	etag := aws.ToString(head.ETag)
	if etag == "" {
		_, err := writeFile(ctx, dst, p.fetcher(in, ""))
		return false, err
	}
	return p.inputs.linkTo(ctx, in.Bucket, in.Key, etag, p.fetcher(in, etag), dst)
}

// fetcher downloads the input; a non-empty etag makes the read
// conditional on it, so a cache entry holds the version it is named by.
func (p *Processor) fetcher(in StateInput, etag string) fetchFunc {
	return func(ctx context.Context, w io.Writer) error {
		req := &s3.GetObjectInput{Bucket: aws.String(in.Bucket), Key: aws.String(in.Key)}
		if etag != "" {
			req.IfMatch = aws.String(etag)
		}
		obj, err := p.cfg.S3.GetObject(ctx, req)
		if err != nil {
			return fmt.Errorf("get input s3://%s/%s: %w", in.Bucket, in.Key, err)
		}
		defer obj.Body.Close()
		if _, err := io.Copy(w, obj.Body); err != nil {
			return fmt.Errorf("download s3://%s/%s: %w", in.Bucket, in.Key, err)
		}
		return nil
	}
}

// convert runs the converter once a conversion slot is free for the job's
// app and session (by fair share), and counts it in the metrics.
func (p *Processor) convert(ctx context.Context, st *State, req convert.Request) (convert.Output, usage, error) {
	p.metrics.waiting.Inc()
	release, err := p.convs.acquire(ctx, st.App, st.Channel)
	p.metrics.waiting.Dec()
	if err != nil {
		return convert.Output{}, usage{}, fmt.Errorf("wait for a conversion slot: %w", err)
	}
	defer release()
	p.metrics.running.Inc()
	start := time.Now()
	out, err := p.cfg.Converter.Convert(ctx, req)
	p.metrics.running.Dec()
	cost := usage{convert: time.Since(start), cpu: out.CPU}
	outcome := "ok"
	var ce *convert.Error
	switch {
	case errors.As(err, &ce):
		outcome, cost.cpu = "failed", ce.CPU
	case err != nil:
		outcome = "canceled"
	}
	conv := req.Output.Converter
	p.metrics.convSeconds.WithLabelValues(conv, outcome).Observe(cost.convert.Seconds())
	p.metrics.convCPU.WithLabelValues(conv).Add(cost.cpu.Seconds())
	return out, cost, err
}
