package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/processor/convert"
	"github.com/heraldgw/herald/processor/sniff"
	"github.com/heraldgw/herald/tenant"
)

// Upload expiry bounds.
const (
	DefaultUploadExpiry = 10 * time.Minute
	MaxUploadExpiry     = 15 * time.Minute
)

// IntakeConfig configures an [Intake]. Zero fields get the documented
// defaults.
type IntakeConfig struct {
	// S3 and Presigner reach the bucket; Queue and QueueURL the job queue.
	// S3 and Queue are only needed for SubmitJob.
	S3        S3API
	Presigner Presigner
	Queue     Queue
	QueueURL  string
	// Bucket receives uploads. Required.
	Bucket string
	// SourceBuckets are further buckets whose objects SubmitJob may
	// convert; by default only Bucket. The gateway reads them with its own
	// credentials, so without this list any app's service could have any
	// object the gateway can read converted and get links to the results.
	SourceBuckets []string
	// Pipelines decide which declared content types are accepted; nil
	// means convert.DefaultPipelines().
	Pipelines []convert.Pipeline
	// UploadExpiry is how long a grant is valid: default 10 min, at most
	// 15 min.
	UploadExpiry time.Duration
	// PartURLExpiry is how long a presigned part URL of a resumable
	// upload is valid: default 5 min, at most 1 h.
	PartURLExpiry time.Duration
	// MarkerPrefix is where the processor keeps job records (its
	// Config.MarkerPrefix); default job.RecordsPrefix.
	MarkerPrefix string
	// URLExpiry is how long the output URLs JobStatus signs work; default
	// 1 h.
	URLExpiry time.Duration
	// Apps gives each app's jobs-in-flight quota: at it, grants and
	// submissions are refused with a *tenant.QuotaError (needs S3 to
	// count). Nil: no quota.
	Apps   Apps
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Intake starts jobs: it grants direct browser uploads and enqueues
// conversions of objects already in S3. It needs no converter, so a
// web-only process can run it.
type Intake struct {
	cfg      IntakeConfig
	log      *slog.Logger
	inflight inFlight
}

// NewIntake checks cfg and returns an Intake.
func NewIntake(cfg IntakeConfig) (*Intake, error) {
	if cfg.Presigner == nil || cfg.Bucket == "" {
		return nil, errors.New("processor intake: Presigner and Bucket are required")
	}
	if cfg.Pipelines == nil {
		cfg.Pipelines = convert.DefaultPipelines()
	}
	if cfg.UploadExpiry <= 0 {
		cfg.UploadExpiry = DefaultUploadExpiry
	}
	cfg.UploadExpiry = min(cfg.UploadExpiry, MaxUploadExpiry)
	if cfg.PartURLExpiry <= 0 {
		cfg.PartURLExpiry = DefaultPartURLExpiry
	}
	cfg.PartURLExpiry = min(cfg.PartURLExpiry, MaxPartURLExpiry)
	if cfg.MarkerPrefix == "" {
		cfg.MarkerPrefix = job.RecordsPrefix
	}
	if cfg.URLExpiry <= 0 {
		cfg.URLExpiry = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Intake{cfg: cfg, log: cfg.Logger, inflight: inFlight{s3: cfg.S3, bucket: cfg.Bucket, now: cfg.Now, log: cfg.Logger}}, nil
}

// GrantUpload checks the request and presigns a POST for exactly
// uploads/{app}/{channel}/{jobId}/{safe filename}, with the content type
// fixed and the size fixed to the declared Size (content-length-range
// [Size, Size]): a grant is good for the file it was asked for and no
// other, so a small declared file cannot turn into MaxBytes of storage.
func (in *Intake) GrantUpload(ctx context.Context, req job.UploadRequest) (job.UploadGrant, error) {
	if req.MaxBytes <= 0 {
		return job.UploadGrant{}, fmt.Errorf("no upload limit for app %q: %w", req.App, job.ErrInvalid)
	}
	jobID, key, ct, err := in.newUpload(req.App, req.Channel, req.Filename, req.ContentType, req.Size,
		job.Limits{MaxBytes: req.MaxBytes, AllowedTypes: req.AllowedTypes})
	if err != nil {
		return job.UploadGrant{}, err
	}
	if req.Size == 0 {
		return job.UploadGrant{}, fmt.Errorf("%q: the file's size in bytes must be declared (the upload is held to it): %w", req.Filename, job.ErrInvalid)
	}
	if err := in.checkQuota(ctx, req.App); err != nil {
		return job.UploadGrant{}, err
	}
	expiry := in.cfg.UploadExpiry
	post, err := in.cfg.Presigner.PresignPostObject(ctx, &s3.PutObjectInput{Bucket: aws.String(in.cfg.Bucket), Key: aws.String(key)},
		func(o *s3.PresignPostOptions) {
			o.Expires = expiry
			o.Conditions = []any{
				[]any{"content-length-range", req.Size, req.Size},
				[]any{"eq", "$Content-Type", ct},
			}
		})
	if err != nil {
		return job.UploadGrant{}, fmt.Errorf("presign upload %s: %w", key, err)
	}
	fields := make(map[string]string, len(post.Values)+1)
	for k, v := range post.Values {
		fields[k] = v
	}
	fields["Content-Type"] = ct
	in.log.LogAttrs(ctx, slog.LevelDebug, "upload granted", slog.String("app", req.App), slog.String("channel", req.Channel),
		slog.String("job", jobID), slog.String("key", key), slog.String("content_type", ct), slog.Int64("size", req.Size))
	return job.UploadGrant{
		JobID: jobID, Key: key, URL: post.URL, Fields: fields, ContentType: ct,
		MaxBytes: req.Size, ExpiresAt: in.cfg.Now().Add(expiry).UTC(),
	}, nil
}

// newUpload checks a new upload's name, declared type and size against the
// pipelines and the app's limits, and chooses its job id, key and content
// type.
func (in *Intake) newUpload(app, channel, filename, declaredType string, size int64, lim job.Limits) (jobID, key, ct string, err error) {
	switch {
	case filename == "":
		return "", "", "", fmt.Errorf("filename is required: %w", job.ErrInvalid)
	case size < 0:
		return "", "", "", fmt.Errorf("size %d: must be the file's size in bytes: %w", size, job.ErrInvalid)
	case size > lim.MaxBytes:
		return "", "", "", fmt.Errorf("%s is %d bytes, over the limit of %d: %w", filename, size, lim.MaxBytes, job.ErrTooLarge)
	}
	jobID, err = job.NewID()
	if err != nil {
		return "", "", "", err
	}
	k := job.Key{App: app, Channel: channel, JobID: jobID}
	if !k.Valid() {
		return "", "", "", fmt.Errorf("app %q or channel %q is not a valid id: %w", app, channel, job.ErrInvalid)
	}
	name := job.SafeFilename(filename)
	key = k.UploadKey(name)
	ct = canonicalType(declaredType, name)
	if !lim.AllowsType(ct) {
		return "", "", "", fmt.Errorf("content type %q of %q is not among this app's allowed types %v: %w", declaredType, filename, lim.AllowedTypes, job.ErrUnsupportedFormat)
	}
	if _, err := convert.SelectPipeline(in.cfg.Pipelines, key, ct); err != nil {
		return "", "", "", fmt.Errorf("content type %q of %q: %w", declaredType, filename, job.ErrUnsupportedFormat)
	}
	return jobID, key, ct, nil
}

// SubmitJob checks that the object exists and enqueues its job; the
// consumer then runs it as it would an upload. It returns the job id.
func (in *Intake) SubmitJob(ctx context.Context, req job.Request) (string, error) {
	if in.cfg.S3 == nil || in.cfg.Queue == nil {
		return "", errors.New("processor intake: S3 and Queue are required to submit jobs")
	}
	switch {
	case !tenant.ValidChannelID(req.Channel):
		return "", fmt.Errorf("channel %q is not a channel id: %w", req.Channel, job.ErrInvalid)
	case req.Bucket == "" || req.Key == "":
		return "", fmt.Errorf("bucket and key are required: %w", job.ErrInvalid)
	case req.Bucket != in.cfg.Bucket && !slices.Contains(in.cfg.SourceBuckets, req.Bucket):
		return "", fmt.Errorf("bucket %q is neither the uploads bucket nor a configured source bucket: %w", req.Bucket, job.ErrForbidden)
	case strings.HasPrefix(req.Key, job.ReservedPrefix):
		// Checked before the object is looked up, so the answer tells
		// nothing about what exists there.
		return "", fmt.Errorf("key %q: %s is reserved for Herald's own records: %w", req.Key, job.ReservedPrefix, job.ErrForbidden)
	}
	head, err := in.cfg.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(req.Bucket), Key: aws.String(req.Key)})
	switch {
	case isNotFound(err):
		return "", fmt.Errorf("s3://%s/%s: %w", req.Bucket, req.Key, job.ErrNotFound)
	case err != nil:
		return "", fmt.Errorf("head s3://%s/%s: %w", req.Bucket, req.Key, err)
	}
	if err := in.checkQuota(ctx, req.App); err != nil {
		return "", err
	}
	jobID, err := job.NewID()
	if err != nil {
		return "", err
	}
	st := &State{
		Herald: stateMarker, V: stateVersion, App: req.App, Channel: req.Channel, JobID: jobID,
		Step: StepStart, Source: SourceSubmit,
		Input:     StateInput{Bucket: req.Bucket, Key: req.Key, Size: aws.ToInt64(head.ContentLength)},
		EventTime: in.cfg.Now().UTC(),
	}
	if err := st.validate(); err != nil {
		return "", fmt.Errorf("%w: %w", err, job.ErrInvalid)
	}
	// The record first: once the state is queued, the job may be asked
	// about.
	if err := putJSON(ctx, in.cfg.S3, in.cfg.Bucket, recordKey(in.cfg.MarkerPrefix, st.App, st.JobID), recordOf(st, nil), false); err != nil {
		return "", err
	}
	if err := sendState(ctx, in.cfg.Queue, in.cfg.QueueURL, st); err != nil {
		return "", err
	}
	in.log.LogAttrs(ctx, slog.LevelDebug, "job submitted", slog.String("app", req.App), slog.String("channel", req.Channel),
		slog.String("job", jobID), slog.String("bucket", req.Bucket), slog.String("key", req.Key))
	return jobID, nil
}

// checkQuota refuses a new job of app at its jobs-in-flight quota (a
// *tenant.QuotaError, which says when to retry).
func (in *Intake) checkQuota(ctx context.Context, app string) error {
	if in.cfg.Apps == nil || in.cfg.S3 == nil {
		return nil
	}
	return in.inflight.check(ctx, app, maxJobs(in.cfg.Apps, app))
}

func sendState(ctx context.Context, q Queue, url string, st *State) error {
	body, err := st.Encode()
	if err != nil {
		return err
	}
	if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(string(body))}); err != nil {
		return fmt.Errorf("enqueue job %s step %s: %w", st.JobID, st.stepID(), err)
	}
	return nil
}

// sendStates enqueues states in batches of up to 10 (one request each
// instead of one per state). If any entry fails the error says so, and the
// caller's step is retried: resending the ones that made it is harmless,
// since every step is idempotent.
func sendStates(ctx context.Context, q Queue, url string, sts []*State) error {
	for len(sts) > 0 {
		batch := sts[:min(len(sts), 10)]
		sts = sts[len(batch):]
		entries := make([]types.SendMessageBatchRequestEntry, len(batch))
		for i, st := range batch {
			body, err := st.Encode()
			if err != nil {
				return err
			}
			entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(body))}
		}
		out, err := q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			return fmt.Errorf("enqueue %d steps of job %s: %w", len(batch), batch[0].JobID, err)
		}
		if len(out.Failed) > 0 {
			f := out.Failed[0]
			return fmt.Errorf("enqueue %d steps of job %s: %d failed, first with %s: %s", len(batch), batch[0].JobID,
				len(out.Failed), aws.ToString(f.Code), aws.ToString(f.Message))
		}
	}
	return nil
}

// typeAliases maps the types browsers declare onto the sniffer's
// canonical names.
var typeAliases = map[string]string{
	"image/jpg": sniff.JPEG, "image/pjpeg": sniff.JPEG,
	"image/x-png": sniff.PNG, "image/tif": sniff.TIFF, "image/x-tiff": sniff.TIFF,
	"image/psd": sniff.PSD, "image/x-photoshop": sniff.PSD, "application/x-photoshop": sniff.PSD, "application/photoshop": sniff.PSD,
	"image/heic-sequence": sniff.HEIC, "image/heif-sequence": sniff.HEIF,
	"audio/x-wav": sniff.WAV, "audio/wave": sniff.WAV, "audio/vnd.wave": sniff.WAV,
	"audio/x-flac": sniff.FLAC, "audio/x-aiff": sniff.AIFF, "audio/aif": sniff.AIFF,
	"audio/mp3": sniff.MP3, "audio/x-mp3": sniff.MP3, "audio/mpeg3": sniff.MP3, "audio/x-mpeg": sniff.MP3,
	"audio/x-m4a": sniff.M4A, "audio/m4a": sniff.M4A, "audio/aac": sniff.M4A, "audio/x-aac": sniff.M4A,
	"application/ogg": sniff.OGG, "audio/vorbis": sniff.OGG, "audio/opus": sniff.OGG,
}

// extTypes guesses a type from the extension when the browser declared
// none (it does so for types its OS does not know, e.g. .psd or .heic).
var extTypes = map[string]string{
	"jpg": sniff.JPEG, "jpeg": sniff.JPEG, "png": sniff.PNG, "webp": sniff.WebP, "gif": sniff.GIF,
	"tif": sniff.TIFF, "tiff": sniff.TIFF, "psd": sniff.PSD, "heic": sniff.HEIC, "heif": sniff.HEIF,
	"avif": sniff.AVIF, "pdf": sniff.PDF, "svg": sniff.SVG, "wav": sniff.WAV, "flac": sniff.FLAC,
	"aif": sniff.AIFF, "aiff": sniff.AIFF, "mp3": sniff.MP3, "ogg": sniff.OGG, "oga": sniff.OGG,
	"opus": sniff.OGG, "m4a": sniff.M4A,
}

// canonicalType is the declared type in the sniffer's vocabulary. It only
// decides whether a grant is given and what Content-Type the object gets;
// the consumer sniffs the bytes and ignores it.
func canonicalType(declared, filename string) string {
	t := strings.ToLower(strings.TrimSpace(declared))
	if i := strings.IndexByte(t, ';'); i >= 0 {
		t = strings.TrimSpace(t[:i])
	}
	if t == "" || t == "application/octet-stream" {
		return extTypes[strings.ToLower(strings.TrimPrefix(path.Ext(filename), "."))]
	}
	if a, ok := typeAliases[t]; ok {
		return a
	}
	return t
}
