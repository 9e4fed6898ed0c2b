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
		return true, p.publish(ctx, fm.Event)
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
// step ended the job first.
func (p *Processor) end(ctx context.Context, k job.Key, writer string, e *event.Envelope) error {
	err := p.putJSON(ctx, p.finalMarkerKey(k), finalMarker{Writer: writer, Event: e}, true)
	switch {
	case isPreconditionFailed(err):
		fm, err := p.readFinal(ctx, k)
		if err != nil {
			return err
		}
		if fm == nil || fm.Writer != writer {
			p.log.LogAttrs(ctx, slog.LevelInfo, "job already ended by another step", slog.String("job", k.JobID),
				slog.String("step", writer), slog.String("type", e.Type))
			return nil
		}
		e = fm.Event
	case err != nil:
		return err
	}
	if err := p.publish(ctx, e); err != nil {
		return err
	}
	attrs := []slog.Attr{slog.String("job", k.JobID), slog.String("app", k.App), slog.String("channel", k.Channel),
		slog.String("type", e.Type), slog.String("event_id", e.ID)}
	if e.Error != nil {
		attrs = append(attrs, slog.String("code", e.Error.Code), slog.String("error", e.Error.Message))
	}
	p.log.LogAttrs(ctx, slog.LevelInfo, "job ended", attrs...)
	return nil
}

// fail ends the job with job.failed. Conversion failures are
// deterministic, so the step's message is deleted after this returns nil.
func (p *Processor) fail(ctx context.Context, st *State, code convert.Code, msg string) error {
	e := p.envelope(st, event.TypeFailed, st.stepID(), int64(len(st.Outputs)+2), nil)
	e.Error = &event.Error{Code: string(code), Message: truncate(msg, 1024)}
	return p.end(ctx, st.job(), st.stepID(), e)
}

// complete ends the job with job.completed; outs are the records of
// every output, in pipeline order.
func (p *Processor) complete(ctx context.Context, st *State, outs []event.Output) error {
	if err := p.sign(ctx, outs); err != nil {
		return err
	}
	e := p.envelope(st, event.TypeCompleted, st.stepID(), int64(len(st.Outputs)+2), &event.Progress{Done: len(outs), Total: len(st.Outputs)})
	e.Outputs = outs
	return p.end(ctx, st.job(), st.stepID(), e)
}

// storedOutputs reads the record of every output of the job, all at once
// (this is on the path from the last output to the browser's
// job.completed), and counts the stored ones. An output object is
// written in one PUT together with its record, so a record means that
// output is done. HEADs of known keys rather than a listing keep the
// processor's S3 permissions to reading and writing objects.
func (p *Processor) storedOutputs(ctx context.Context, st *State) (outs []event.Output, done int, err error) {
	outs = make([]event.Output, len(st.Outputs))
	found := make([]bool, len(st.Outputs))
	errs := make([]error, len(st.Outputs))
	var wg sync.WaitGroup
	for i, file := range st.Outputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], found[i], errs[i] = p.storedOutput(ctx, st, file)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, 0, err
	}
	for _, f := range found {
		if f {
			done++
		}
	}
	return outs, done, nil
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
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	in := &s3.PutObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key), Body: bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))), ContentType: aws.String("application/json")}
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := p.cfg.S3.PutObject(ctx, in); err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", p.cfg.Bucket, key, err)
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
