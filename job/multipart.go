package job

import (
	"strings"
	"time"
)

// S3's multipart limits, which every resumable upload keeps to.
const (
	// MaxParts is the most parts an upload may have.
	MaxParts = 10000
	// MinPartSize is the least size of every part but the last.
	MinPartSize = 5 << 20
)

// Limits are an app's bounds on one upload, filled in by the gateway from
// the app's configuration.
type Limits struct {
	// MaxBytes bounds the object.
	MaxBytes int64
	// AllowedTypes narrows the accepted content types ("image/tiff",
	// "audio/*"); empty allows every type a pipeline converts.
	AllowedTypes []string
}

// MultipartRequest starts a resumable upload: the body of POST
// /v1/uploads/s3/multipart (Uppy's Companion protocol), completed with
// the session's app and channel and the app's limits.
type MultipartRequest struct {
	App, Channel string
	Filename     string
	ContentType  string
	// Size is the size the client declared (0: not declared); a declared
	// size over the limit is refused before any byte is sent.
	Size int64
	Limits
}

// MultipartUpload is a started resumable upload. Key is chosen by the
// gateway, uploads/{app}/{channel}/{jobId}/{filename}.
type MultipartUpload struct {
	JobID    string `json:"jobId"`
	Key      string `json:"key"`
	UploadID string `json:"uploadId"`
}

// UploadRef names a resumable upload of the session's channel: the key
// the gateway chose and S3's upload id, with the app's limits.
type UploadRef struct {
	Key      string
	UploadID string
	Limits
}

// Part is one uploaded part, as S3's ListParts reports it and as the
// browser sends it back to complete the upload (Companion's field names).
type Part struct {
	PartNumber int    `json:"PartNumber"`
	Size       int64  `json:"Size,omitempty"`
	ETag       string `json:"ETag"`
}

// SignedPart is a presigned UploadPart request: the browser PUTs the part's
// bytes to URL before Expires.
type SignedPart struct {
	URL     string
	Expires time.Time
}

// Completed is a finished resumable upload: the object's location and key.
type Completed struct {
	Location string `json:"location"`
	Key      string `json:"key"`
	Bucket   string `json:"bucket"`
}

// AllowsType reports whether content type ct ("type/subtype", lower case)
// is one of AllowedTypes or in one of its families ("image/*"); an empty
// list allows every type.
func (l Limits) AllowsType(ct string) bool {
	if len(l.AllowedTypes) == 0 {
		return true
	}
	major, _, _ := strings.Cut(ct, "/")
	for _, t := range l.AllowedTypes {
		t = strings.ToLower(t)
		if t == ct || t == major+"/*" {
			return true
		}
	}
	return false
}
