package processor

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/processor/s3event"
)

// step is the work one message asks for. A nil error means the message
// is done with and may be deleted; any error is transient and the message
// is retried.
type step func(ctx context.Context) error

// route decides what a message body asks for, and for which job (whose
// app and channel its turn is scheduled by; zero when it names none). An
// error (wrapping errMalformed) means the body can never be handled.
func (p *Processor) route(msgID string, body []byte) (step, job.Key, error) {
	if isState(body) {
		st, err := DecodeState(body)
		if err != nil {
			return nil, job.Key{}, malformed(err)
		}
		if st.Step == StepStart {
			return func(ctx context.Context) error { return p.start(ctx, st) }, st.job(), nil
		}
		return func(ctx context.Context) error { return p.output(ctx, st) }, st.job(), nil
	}
	objs, err := s3event.Parse(body)
	switch {
	case errors.Is(err, s3event.ErrTestEvent):
		return func(ctx context.Context) error {
			p.log.Info("s3:TestEvent deleted", "message_id", msgID)
			return nil
		}, job.Key{}, nil
	case err != nil:
		return nil, job.Key{}, malformed(err)
	}
	var k job.Key
	if len(objs) > 0 {
		k = keyOf(objs[0].Key)
	}
	// A message may carry several records; each is handled, and any
	// transient failure retries the whole message (every step is
	// idempotent).
	return func(ctx context.Context) error {
		var errs []error
		for _, o := range objs {
			if err := p.object(ctx, msgID, o); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}, k, nil
}

// keyOf is the job an object key belongs to, if any.
func keyOf(key string) job.Key {
	if k, _, err := job.ParseUploadKey(key); err == nil {
		return k
	}
	if k, err := job.ParseManifestKey(key); err == nil {
		return k
	}
	return job.Key{}
}

// object starts the work one S3 event asks for.
func (p *Processor) object(ctx context.Context, msgID string, o s3event.Object) error {
	if !o.Created {
		return nil
	}
	switch {
	case strings.HasPrefix(o.Key, job.UploadsPrefix):
		k, _, err := job.ParseUploadKey(o.Key)
		if err != nil {
			// Not ours to convert (e.g. put there by hand); nobody to tell.
			p.log.Warn("upload key ignored", "message_id", msgID, "bucket", o.Bucket, "err", err)
			return nil
		}
		return p.start(ctx, &State{
			Herald: stateMarker, V: stateVersion, App: k.App, Channel: k.Channel, JobID: k.JobID,
			Source: SourceUpload, Step: StepStart,
			Input: StateInput{Bucket: o.Bucket, Key: o.Key, Size: o.Size}, EventTime: o.Time,
		})
	case job.IsManifestKey(o.Key):
		k, err := job.ParseManifestKey(o.Key)
		if err != nil {
			p.log.Warn("manifest key ignored", "message_id", msgID, "bucket", o.Bucket, "err", err)
			return nil
		}
		return p.manifest(ctx, k, o.Bucket, o.Key)
	}
	p.log.LogAttrs(ctx, slog.LevelDebug, "object event ignored", slog.String("bucket", o.Bucket), slog.String("key", o.Key))
	return nil
}
