package processor

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/tenant"
)

// Apps is the part of the tenant registry the processor reads: an app's
// limits (jobs in flight, conversion weight). *tenant.Registry satisfies
// it. A job of an app it does not know gets the defaults.
type Apps interface {
	App(id string) (*tenant.App, error)
}

var _ Apps = (*tenant.Registry)(nil)

// conversionWeight is app's ConversionWeight (1 when unknown).
func conversionWeight(apps Apps, app string) int {
	if apps == nil {
		return 1
	}
	a, err := apps.App(app)
	if err != nil {
		return tenant.DefaultConversionWeight
	}
	return a.ConversionWeight
}

// InFlightTTL is how long a job's in-flight marker counts: a job whose
// steps all ended in the dead-letter queue never removes its marker, and
// must not hold its app's quota for ever.
const InFlightTTL = time.Hour

// QuotaRetryAfter is the Retry-After of a refusal for the jobs-in-flight
// quota: jobs take seconds, so the caller comes back soon.
const QuotaRetryAfter = 5 * time.Second

// maxJobs is app's MaxJobsInFlight (negative: no limit).
func maxJobs(apps Apps, app string) int {
	if apps == nil {
		return -1
	}
	a, err := apps.App(app)
	if err != nil {
		return tenant.DefaultMaxJobsInFlight
	}
	return a.MaxJobsInFlight
}

// inFlight counts an app's jobs in flight from their markers,
// {job.InFlightPrefix}{app}/{jobId}: the start step of a job creates one,
// the step that ends it deletes it. Counting is one listing, wherever it
// is needed (a web process granting uploads, any processor), so the quota
// holds across processes. Two jobs admitted at the same instant may both
// pass the last free place: the quota can be overshot by the starts
// running at that moment, never more.
type inFlight struct {
	s3     S3API
	bucket string
	now    func() time.Time
	log    *slog.Logger
}

func (f inFlight) prefix(app string) string { return job.InFlightPrefix + app + "/" }

func (f inFlight) key(app, jobID string) string { return f.prefix(app) + jobID }

// count returns how many jobs of app are in flight, stopping once it has
// seen more than limit. Markers older than InFlightTTL do not count and
// are removed.
func (f inFlight) count(ctx context.Context, app string, limit int) (int, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(f.bucket), Prefix: aws.String(f.prefix(app)), MaxKeys: aws.Int32(int32(min(limit+1, 1000)))}
	stale := f.now().Add(-InFlightTTL)
	n := 0
	for page := 0; page < 10 && n <= limit; page++ {
		out, err := f.s3.ListObjectsV2(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("count jobs in flight of app %q: %w", app, err)
		}
		for _, o := range out.Contents {
			if aws.ToTime(o.LastModified).Before(stale) {
				f.forget(ctx, aws.ToString(o.Key))
				continue
			}
			n++
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		in.ContinuationToken = out.NextContinuationToken
	}
	return n, nil
}

// check refuses a new job of app with a *tenant.QuotaError once the app
// has limit jobs in flight (a negative limit: no quota).
func (f inFlight) check(ctx context.Context, app string, limit int) error {
	if limit < 0 {
		return nil
	}
	n, err := f.count(ctx, app, limit)
	if err != nil {
		return err
	}
	if n >= limit {
		return &tenant.QuotaError{App: app, Limit: "maxJobsInFlight", Max: int64(limit), Retry: QuotaRetryAfter}
	}
	return nil
}

// add marks job k as in flight.
func (f inFlight) add(ctx context.Context, k job.Key) error {
	_, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(f.key(k.App, k.JobID)),
		Body: strings.NewReader(""), ContentLength: aws.Int64(0)})
	if err != nil {
		return fmt.Errorf("mark job %s in flight: %w", k.JobID, err)
	}
	return nil
}

// has reports whether job k is marked in flight.
func (f inFlight) has(ctx context.Context, k job.Key) (bool, error) {
	_, err := f.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(f.key(k.App, k.JobID))})
	switch {
	case isNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("head in-flight marker of job %s: %w", k.JobID, err)
	}
	return true, nil
}

// remove ends job k's place in its app's quota. A failure is only logged:
// the marker stops counting after InFlightTTL.
func (f inFlight) remove(ctx context.Context, k job.Key) { f.forget(ctx, f.key(k.App, k.JobID)) }

func (f inFlight) forget(ctx context.Context, key string) {
	if _, err := f.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(key)}); err != nil {
		f.log.Warn("in-flight marker not removed; it stops counting after its TTL", "key", key, "ttl", InFlightTTL, "err", err)
	}
}

// admit takes a place in the app's jobs-in-flight quota for the job st
// starts. When the app has none free, the start is put back on the queue
// to try again later (wait is true and the message may be deleted): an
// upload that arrived beyond the quota waits, it is not dropped.
func (p *Processor) admit(ctx context.Context, st *State) (wait bool, err error) {
	limit := maxJobs(p.cfg.Apps, st.App)
	if limit < 0 {
		return false, nil
	}
	err = p.inflight.check(ctx, st.App, limit)
	if err == nil {
		return false, p.inflight.add(ctx, st.job())
	}
	if _, quota := err.(*tenant.QuotaError); !quota {
		return false, err
	}
	// A start redelivered after it took its place keeps it.
	if held, err := p.inflight.has(ctx, st.job()); err != nil || held {
		return false, err
	}
	return true, p.waitForQuota(ctx, st)
}

// waitForQuota sends the job's start state again, delayed: 2 s, doubling
// with each wait up to 16 s. A new message rather than a longer
// visibility, so waiting never counts as a failed receive (which would
// move the job to the dead-letter queue).
func (p *Processor) waitForQuota(ctx context.Context, st *State) error {
	next := *st
	next.Waits++
	delay := min(2*time.Second<<min(st.Waits, 3), 16*time.Second)
	body, err := next.Encode()
	if err != nil {
		return err
	}
	if _, err := p.cfg.Queue.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(p.cfg.QueueURL),
		MessageBody: aws.String(string(body)), DelaySeconds: int32(delay / time.Second)}); err != nil {
		return fmt.Errorf("requeue job %s to wait for its app's quota: %w", st.JobID, err)
	}
	p.metrics.quotaWaits.WithLabelValues(st.App).Inc()
	p.log.LogAttrs(ctx, slog.LevelInfo, "job waits for its app's jobs-in-flight quota", slog.String("app", st.App),
		slog.String("job", st.JobID), slog.Int("waits", next.Waits), slog.Duration("retry_in", delay))
	return nil
}
