package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/processor/convert"
)

// A job ends exactly once. Whoever ends it (the last output step, a
// failing step, or an external converter's manifest) first writes the
// job's final marker with If-None-Match: *, holding the final event and
// the writer's step id, and only then publishes. S3 lets one such write
// win; a loser whose step id differs does nothing, while the winner's own
// retry (after a crash between write and publish) finds its id in the
// marker and publishes the stored event again, with the same event id.
// So job.completed and job.failed are exclusive and published at least
// once, and clients dedupe on the id.

// finalMarker is the body of a job's final marker.
type finalMarker struct {
	Writer string          `json:"writer"`
	Event  *event.Envelope `json:"event"`
}

func (p *Processor) jobMarkerPrefix(k job.Key) string { return p.cfg.MarkerPrefix + k.Path() }

func (p *Processor) finalMarkerKey(k job.Key) string { return p.jobMarkerPrefix(k) + "final.json" }

// replayFinal checks whether the job already ended. If this step ended it
// (and crashed before its message was deleted) the final event is
// published again. ended means there is nothing left to do.
func (p *Processor) replayFinal(ctx context.Context, st *State) (ended bool, err error) {
	fm, err := p.readFinal(ctx, st.job())
	if err != nil || fm == nil {
		return false, err
	}
	if fm.Writer == st.stepID() {
		if err := p.publish(ctx, fm.Event); err != nil {
			return true, err
		}
		p.inflight.remove(ctx, st.job())
		return true, nil
	}
	p.log.LogAttrs(ctx, slog.LevelDebug, "job already ended; step skipped", slog.String("job", st.JobID),
		slog.String("step", st.stepID()), slog.String("ended_by", fm.Writer))
	return true, nil
}

// readFinal returns the job's final marker, or nil if the job has not
// ended.
func (p *Processor) readFinal(ctx context.Context, k job.Key) (*finalMarker, error) {
	var fm finalMarker
	found, err := p.getJSON(ctx, p.finalMarkerKey(k), &fm)
	if err != nil || !found {
		return nil, err
	}
	if fm.Event == nil {
		return nil, fmt.Errorf("final marker of job %s has no event", k.JobID)
	}
	return &fm, nil
}

// end writes the final marker for e and publishes e, unless another
// step ended the job first. The step that ends the job writes the job's
// one INFO log line and counts it in the metrics; cost is what its
// conversions took, detail why it failed (for the log only).
func (p *Processor) end(ctx context.Context, st *State, writer string, e *event.Envelope, cost usage, detail string) error {
	return p.endWith(ctx, st, ending{writer: writer, final: e, cost: cost, detail: detail})
}

// ending is how a step ends its job: writer names the step, first (if
// not nil) is published just before final, and only if this step ends
// the job; cost and detail go to the job's log line.
type ending struct {
	writer       string
	first, final *event.Envelope
	cost         usage
	detail       string
}

// endWith is end with an optional event published first.
func (p *Processor) endWith(ctx context.Context, st *State, en ending) error {
	k, writer, e := st.job(), en.writer, en.final
	err := p.putJSON(ctx, p.finalMarkerKey(k), finalMarker{Writer: writer, Event: e}, true)
	switch {
	case isPreconditionFailed(err):
		fm, err := p.readFinal(ctx, k)
		if err != nil {
			return err
		}
		if fm == nil || fm.Writer != writer {
			p.log.LogAttrs(ctx, slog.LevelDebug, "job already ended by another step", slog.String("job", k.JobID),
				slog.String("step", writer), slog.String("type", e.Type))
			return nil
		}
		e = fm.Event
	case err != nil:
		return err
	}
	if en.first != nil {
		if err := p.publish(ctx, en.first); err != nil {
			return err
		}
	}
	if err := p.publish(ctx, e); err != nil {
		return err
	}
	p.inflight.remove(ctx, k)
	p.siblings.stop(k.JobID, st.Output)
	p.jobEnded(ctx, st, e, en.cost, en.detail)
	return nil
}

// jobEnded logs the job's one INFO line and counts it.
func (p *Processor) jobEnded(ctx context.Context, st *State, e *event.Envelope, cost usage, detail string) {
	outcome, code := outcomeCompleted, ""
	if e.Error != nil {
		outcome, code = outcomeFailed, e.Error.Code
	}
	now := p.cfg.Now()
	p.metrics.jobEnded(st.App, st.Pipeline, outcome, code, st.EventTime, now)
	attrs := []slog.Attr{slog.String("app", st.App), slog.String("channel", st.Channel), slog.String("job", st.JobID),
		slog.String("pipeline", st.Pipeline), slog.String("outcome", outcome)}
	if e.Error != nil {
		attrs = append(attrs, slog.String("code", code), slog.String("error", e.Error.Message))
	}
	if detail != "" {
		attrs = append(attrs, slog.String("detail", truncate(detail, 4096)))
	}
	if !st.EventTime.IsZero() {
		attrs = append(attrs, slog.Duration("elapsed", max(now.Sub(st.EventTime), 0)))
	}
	attrs = append(attrs, slog.Duration("convert", cost.convert), slog.Duration("cpu", cost.cpu),
		slog.String("input_type", st.Input.MIME), slog.Int64("input_bytes", st.Input.Size), slog.Int("outputs", len(e.Outputs)))
	p.log.LogAttrs(ctx, slog.LevelInfo, "job", attrs...)
}

// fail ends the job with job.failed: code and its fixed message go to the
// browser, detail to the log. Conversion failures are deterministic, so
// the step's message is deleted after this returns nil.
func (p *Processor) fail(ctx context.Context, st *State, code convert.Code, detail string) error {
	return p.failAfter(ctx, st, code, detail, usage{})
}

// failAfter is fail for a step whose conversion ran at cost.
func (p *Processor) failAfter(ctx context.Context, st *State, code convert.Code, detail string, cost usage) error {
	e := p.envelope(st, event.TypeFailed, st.stepID(), int64(len(st.Outputs)+2), nil)
	e.Error = &event.Error{Code: string(code), Message: FailureMessage(code)}
	return p.end(ctx, st, st.stepID(), e, cost, detail)
}

// complete ends the job with job.completed; outs are the records of
// every output, in pipeline order, and cost what they took.
func (p *Processor) complete(ctx context.Context, st *State, outs []event.Output, cost usage) error {
	if err := p.sign(ctx, outs); err != nil {
		return err
	}
	n := len(st.Outputs)
	// The last progress event (seq total+1) comes from the step that ends
	// the job, right before job.completed: from any other step it could
	// arrive after it.
	last := p.envelope(st, event.TypeProgress, st.stepID(), int64(n+1), &event.Progress{Done: n, Total: n})
	e := p.envelope(st, event.TypeCompleted, st.stepID(), int64(n+2), &event.Progress{Done: n, Total: n})
	e.Outputs = outs
	return p.endWith(ctx, st, ending{writer: st.stepID(), first: last, final: e, cost: cost})
}

// outputs reads the record of every output file of job k, all at once
// (this is on the path from the last output to the browser's
// job.completed), and counts the stored ones. An output object is
// written in one PUT together with its record, so a record means that
// output is done. HEADs and GETs of known keys rather than a listing keep
// the processor's S3 permissions to reading and writing objects.
func (r records) outputs(ctx context.Context, k job.Key, files []string, group func(file string) bool) (recs []outputRecord, found []bool, err error) {
	recs = make([]outputRecord, len(files))
	found = make([]bool, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i, file := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs[i], found[i], errs[i] = r.output(ctx, k, file, group(file))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return recs, found, nil
}

// storedOutputs reads the job's output records: outs lists every file in
// pipeline order (a group's parts in place of its entry), done counts the
// outputs stored, last is the stored one latest in pipeline order, cost
// sums what they took to make.
func (p *Processor) storedOutputs(ctx context.Context, st *State) (outs []event.Output, done int, last string, cost usage, err error) {
	recs, found, err := p.records.outputs(ctx, st.job(), st.Outputs, func(file string) bool { return p.isGroup(st.Pipeline, file) })
	if err != nil {
		return nil, 0, "", usage{}, err
	}
	for i, f := range found {
		if f {
			done++
			last = st.Outputs[i]
		}
	}
	for _, r := range recs {
		outs = append(outs, r.outs...)
		cost = cost.add(r.cost)
	}
	return outs, done, last, cost, nil
}

// sign fills the presigned GET URL of each output.
func (p *Processor) sign(ctx context.Context, outs []event.Output) error {
	for i := range outs {
		req, err := p.cfg.Presigner.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(outs[i].Key)},
			s3.WithPresignExpires(p.cfg.URLExpiry))
		if err != nil {
			return fmt.Errorf("presign %s: %w", outs[i].Key, err)
		}
		outs[i].URL = req.URL
	}
	return nil
}

// envelope builds a job event. Its id derives from (job, step, type), so
// a repeated step publishes the same id.
func (p *Processor) envelope(st *State, typ, step string, seq int64, prog *event.Progress) *event.Envelope {
	return &event.Envelope{
		V: event.Version, Type: typ, ID: event.StableID(st.JobID, step, typ), JobID: st.JobID,
		App: st.App, Channel: st.Channel, Seq: seq, Time: p.cfg.Now().UTC(),
		Input:    &event.Object{Bucket: st.Input.Bucket, Key: st.Input.Key, Size: st.Input.Size, ContentType: st.Input.MIME},
		Progress: prog,
	}
}

func (p *Processor) publish(ctx context.Context, e *event.Envelope) error {
	if err := p.cfg.Publisher.Publish(ctx, e); err != nil {
		return fmt.Errorf("publish %s of job %s: %w", e.Type, e.JobID, err)
	}
	return nil
}

// putJSON stores v at key in the bucket; ifAbsent makes it a create-only
// write (If-None-Match: *).
func (p *Processor) putJSON(ctx context.Context, key string, v any, ifAbsent bool) error {
	return putJSON(ctx, p.cfg.S3, p.cfg.Bucket, key, v, ifAbsent)
}

func putJSON(ctx context.Context, c S3API, bucket, key string, v any, ifAbsent bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))), ContentType: aws.String("application/json")}
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := c.PutObject(ctx, in); err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// getJSON reads key into v; found is false when it does not exist.
func (p *Processor) getJSON(ctx context.Context, key string, v any) (found bool, err error) {
	return getJSON(ctx, p.cfg.S3, p.cfg.Bucket, key, v)
}

// maxJSON bounds the JSON objects read back (markers, manifests).
const maxJSON = 1 << 20

func getJSON(ctx context.Context, c S3API, bucket, key string, v any) (bool, error) {
	b, found, err := getBytes(ctx, c, bucket, key)
	if err != nil || !found {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode s3://%s/%s: %w", bucket, key, err)
	}
	return true, nil
}

// getBytes reads a small object; found is false when it does not exist.
func getBytes(ctx context.Context, c S3API, bucket, key string) ([]byte, bool, error) {
	obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	switch {
	case isNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
	}
	defer obj.Body.Close()
	b, err := io.ReadAll(io.LimitReader(obj.Body, maxJSON+1))
	if err != nil {
		return nil, false, fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	if len(b) > maxJSON {
		return nil, false, fmt.Errorf("s3://%s/%s is larger than %d bytes", bucket, key, maxJSON)
	}
	return b, true, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
