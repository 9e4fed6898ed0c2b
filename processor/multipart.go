package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/heraldgw/herald/job"
)

// Part URL expiry bounds: a part URL is asked for just before the part is
// sent, so it needs to outlive only the start of one request.
const (
	DefaultPartURLExpiry = 5 * time.Minute
	MaxPartURLExpiry     = time.Hour
)

// CreateMultipart starts a resumable upload under a key the gateway
// chooses, after the same checks as a single upload grant: a type no
// pipeline (or the app) takes, or a declared size over the limit, is
// refused before any byte is sent.
func (in *Intake) CreateMultipart(ctx context.Context, req job.MultipartRequest) (job.MultipartUpload, error) {
	if err := in.needS3(); err != nil {
		return job.MultipartUpload{}, err
	}
	if req.MaxBytes <= 0 {
		return job.MultipartUpload{}, fmt.Errorf("no upload limit for app %q: %w", req.App, job.ErrInvalid)
	}
	jobID, key, ct, err := in.newUpload(req.App, req.Channel, req.Filename, req.ContentType, req.Size, req.Limits)
	if err != nil {
		return job.MultipartUpload{}, err
	}
	if err := in.checkQuota(ctx, req.App); err != nil {
		return job.MultipartUpload{}, err
	}
	out, err := in.cfg.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(in.cfg.Bucket), Key: aws.String(key), ContentType: aws.String(ct),
	})
	if err != nil {
		return job.MultipartUpload{}, fmt.Errorf("create multipart upload %s: %w", key, err)
	}
	in.log.LogAttrs(ctx, slog.LevelDebug, "multipart upload created", slog.String("app", req.App), slog.String("channel", req.Channel),
		slog.String("job", jobID), slog.String("key", key), slog.String("content_type", ct), slog.Int64("size", req.Size))
	return job.MultipartUpload{JobID: jobID, Key: key, UploadID: aws.ToString(out.UploadId)}, nil
}

// SignPart presigns the UploadPart request of part n. Parts are numbered
// 1 to job.MaxParts; since every part but the last holds at least
// job.MinPartSize bytes, a part number that could only follow more than
// MaxBytes is refused here, before its bytes are sent.
func (in *Intake) SignPart(ctx context.Context, ref job.UploadRef, n int) (job.SignedPart, error) {
	if err := checkRef(ref); err != nil {
		return job.SignedPart{}, err
	}
	switch {
	case n < 1 || n > job.MaxParts:
		return job.SignedPart{}, fmt.Errorf("part number %d: must be 1 to %d: %w", n, job.MaxParts, job.ErrInvalid)
	case int64(n-1)*job.MinPartSize >= ref.MaxBytes:
		return job.SignedPart{}, fmt.Errorf("part %d would make the upload larger than the limit of %d bytes (every part but the last holds at least %d): %w",
			n, ref.MaxBytes, job.MinPartSize, job.ErrTooLarge)
	}
	expiry := in.cfg.PartURLExpiry
	req, err := in.cfg.Presigner.PresignUploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(in.cfg.Bucket), Key: aws.String(ref.Key), UploadId: aws.String(ref.UploadID), PartNumber: aws.Int32(int32(n)),
	}, func(o *s3.PresignOptions) { o.Expires = expiry })
	if err != nil {
		return job.SignedPart{}, fmt.Errorf("presign part %d of %s: %w", n, ref.Key, err)
	}
	return job.SignedPart{URL: req.URL, Expires: in.cfg.Now().Add(expiry).UTC()}, nil
}

// ListParts lists the parts S3 holds of an upload, in order, so that a
// client resumes without sending them again.
func (in *Intake) ListParts(ctx context.Context, ref job.UploadRef) ([]job.Part, error) {
	if err := in.needS3(); err != nil {
		return nil, err
	}
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	parts := []job.Part{}
	var marker *string
	// ListParts pages by 1000; an upload has at most 10,000 parts.
	for page := 0; page <= job.MaxParts/1000; page++ {
		out, err := in.cfg.S3.ListParts(ctx, &s3.ListPartsInput{
			Bucket: aws.String(in.cfg.Bucket), Key: aws.String(ref.Key), UploadId: aws.String(ref.UploadID), PartNumberMarker: marker,
		})
		if err != nil {
			return nil, multipartError(err, "list parts of", ref)
		}
		for _, p := range out.Parts {
			parts = append(parts, job.Part{PartNumber: int(aws.ToInt32(p.PartNumber)), Size: aws.ToInt64(p.Size), ETag: aws.ToString(p.ETag)})
		}
		if !aws.ToBool(out.IsTruncated) {
			return parts, nil
		}
		marker = out.NextPartNumberMarker
	}
	return nil, fmt.Errorf("list parts of %s: more than %d parts", ref.Key, job.MaxParts)
}

// CompleteMultipart assembles the upload from parts. It checks them
// against what S3 holds first, so that a wrong list gets an error that
// names the part; an upload over the limit is aborted (its parts are
// freed) and refused. The object's creation starts the job, exactly as a
// single upload does.
func (in *Intake) CompleteMultipart(ctx context.Context, ref job.UploadRef, parts []job.Part) (job.Completed, error) {
	if err := checkRef(ref); err != nil {
		return job.Completed{}, err
	}
	if len(parts) == 0 || len(parts) > job.MaxParts {
		return job.Completed{}, fmt.Errorf("%d parts: an upload has 1 to %d: %w", len(parts), job.MaxParts, job.ErrInvalid)
	}
	held, err := in.ListParts(ctx, ref)
	if err != nil {
		return job.Completed{}, err
	}
	if err := checkParts(parts, held, ref.MaxBytes); err != nil {
		if errors.Is(err, job.ErrTooLarge) {
			if aerr := in.AbortMultipart(ctx, ref); aerr != nil {
				in.log.Warn("abort of an oversize upload failed", "key", ref.Key, "err", aerr)
			}
		}
		return job.Completed{}, err
	}
	done := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		done[i] = types.CompletedPart{PartNumber: aws.Int32(int32(p.PartNumber)), ETag: aws.String(quoteETag(p.ETag))}
	}
	out, err := in.cfg.S3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(in.cfg.Bucket), Key: aws.String(ref.Key), UploadId: aws.String(ref.UploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	})
	if err != nil {
		return job.Completed{}, multipartError(err, "complete", ref)
	}
	in.log.LogAttrs(ctx, slog.LevelDebug, "multipart upload completed", slog.String("key", ref.Key), slog.Int("parts", len(parts)))
	return job.Completed{Location: aws.ToString(out.Location), Key: ref.Key, Bucket: in.cfg.Bucket}, nil
}

// AbortMultipart ends an upload and frees its parts. An upload that is
// already gone counts as aborted.
func (in *Intake) AbortMultipart(ctx context.Context, ref job.UploadRef) error {
	if err := in.needS3(); err != nil {
		return err
	}
	if err := checkRef(ref); err != nil {
		return err
	}
	_, err := in.cfg.S3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(in.cfg.Bucket), Key: aws.String(ref.Key), UploadId: aws.String(ref.UploadID),
	})
	if err != nil && !errors.Is(multipartError(err, "abort", ref), job.ErrNotFound) {
		return multipartError(err, "abort", ref)
	}
	return nil
}

func (in *Intake) needS3() error {
	if in.cfg.S3 == nil {
		return errors.New("processor intake: S3 is required for resumable uploads")
	}
	return nil
}

// checkRef refuses references that are not an upload of the gateway's key
// layout (the caller has checked that the key is its session's).
func checkRef(ref job.UploadRef) error {
	if _, _, err := job.ParseUploadKey(ref.Key); err != nil {
		return fmt.Errorf("%w: %w", err, job.ErrInvalid)
	}
	if ref.UploadID == "" {
		return fmt.Errorf("upload id is required: %w", job.ErrInvalid)
	}
	if ref.MaxBytes <= 0 {
		return fmt.Errorf("no upload limit: %w", job.ErrInvalid)
	}
	return nil
}

// checkParts checks the client's part list against the parts S3 holds:
// ascending numbers, each held with the same ETag, every part but the last
// at least job.MinPartSize, the total within maxBytes.
func checkParts(parts, held []job.Part, maxBytes int64) error {
	byNumber := make(map[int]job.Part, len(held))
	for _, p := range held {
		byNumber[p.PartNumber] = p
	}
	var total int64
	prev := 0
	for i, p := range parts {
		if p.PartNumber <= prev {
			return fmt.Errorf("part %d follows part %d: parts must be listed in ascending order: %w", p.PartNumber, prev, job.ErrInvalid)
		}
		prev = p.PartNumber
		h, ok := byNumber[p.PartNumber]
		switch {
		case !ok:
			return fmt.Errorf("part %d was not uploaded (or the upload was aborted): %w", p.PartNumber, job.ErrInvalid)
		case quoteETag(p.ETag) != quoteETag(h.ETag):
			return fmt.Errorf("part %d: ETag %s differs from the uploaded part's %s: %w", p.PartNumber, p.ETag, h.ETag, job.ErrInvalid)
		case i < len(parts)-1 && h.Size < job.MinPartSize:
			return fmt.Errorf("part %d is %d bytes; every part but the last must be at least %d: %w", p.PartNumber, h.Size, job.MinPartSize, job.ErrInvalid)
		}
		total += h.Size
	}
	if total > maxBytes {
		return fmt.Errorf("the upload is %d bytes, over the limit of %d; it was aborted: %w", total, maxBytes, job.ErrTooLarge)
	}
	return nil
}

// quoteETag puts an ETag in S3's quoted form; browsers hand it back with
// or without the quotes.
func quoteETag(e string) string {
	e = strings.TrimSpace(e)
	if !strings.HasPrefix(e, `"`) {
		e = `"` + strings.Trim(e, `"`) + `"`
	}
	return e
}

// multipartError names the upload in err and maps S3's multipart error
// codes onto the job errors the API reports.
func multipartError(err error, op string, ref job.UploadRef) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchUpload":
			return fmt.Errorf("%s upload %s of %s: no such upload (completed, aborted or expired): %w", op, ref.UploadID, ref.Key, job.ErrNotFound)
		case "InvalidPart", "InvalidPartOrder", "EntityTooSmall":
			return fmt.Errorf("%s upload %s of %s: %s: %w", op, ref.UploadID, ref.Key, ae.ErrorMessage(), job.ErrInvalid)
		}
	}
	if isNotFound(err) {
		return fmt.Errorf("%s upload %s of %s: %w: %w", op, ref.UploadID, ref.Key, err, job.ErrNotFound)
	}
	return fmt.Errorf("%s upload %s of %s: %w", op, ref.UploadID, ref.Key, err)
}
