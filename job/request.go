package job

import (
	"errors"
	"time"
)

// Errors of starting a job, tested with errors.Is. The HTTP API maps each
// to one error code (web/errors.go).
var (
	// ErrUnsupportedFormat: the declared content type is not one any
	// pipeline takes.
	ErrUnsupportedFormat = errors.New("unsupported format")
	// ErrTooLarge: the declared size exceeds the limit.
	ErrTooLarge = errors.New("too large")
	// ErrInvalid: a request field is missing or malformed.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: the object to convert does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrForbidden: the object is in a bucket jobs may not read, or under
	// ReservedPrefix.
	ErrForbidden = errors.New("object not allowed")
)

// UploadRequest asks for an upload grant: what a browser sends to
// POST /v1/uploads, completed with the session's app and channel and the
// app's limit.
type UploadRequest struct {
	App         string `json:"-"`
	Channel     string `json:"-"`
	Filename    string `json:"filename"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	// MaxBytes is the app's upload limit: a larger declared Size is
	// refused.
	MaxBytes int64 `json:"-"`
	// AllowedTypes are the app's allowed content types (see
	// Limits.AllowsType).
	AllowedTypes []string `json:"-"`
}

// UploadGrant is a presigned POST: the browser sends Fields and then the
// file as multipart/form-data to URL.
type UploadGrant struct {
	JobID  string            `json:"jobId"`
	Key    string            `json:"key"`
	URL    string            `json:"url"`
	Fields map[string]string `json:"fields"`
	// ContentType is the type the object will have (also in Fields).
	ContentType string `json:"-"`
	// MaxBytes is what the upload may carry: the declared size, which
	// the policy's content-length-range holds it to exactly.
	MaxBytes  int64     `json:"maxBytes"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Request asks to convert an object already in S3 for a channel: the body
// of POST /v1/jobs, completed with the caller's app.
type Request struct {
	App     string `json:"-"`
	Channel string `json:"channel"`
	Bucket  string `json:"bucket"`
	Key     string `json:"key"`
}
