package processor

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/heraldgw/herald/topic"
)

// Key prefixes of DESIGN.md.
const (
	UploadsPrefix   = "uploads/"
	ConvertedPrefix = "converted/"
	// ManifestName ends an external converter's outputs; see [Manifest].
	ManifestName = "manifest.json"
)

// JobKey names one job: the routing the object keys carry.
type JobKey struct {
	App, Channel, JobID string
}

func (k JobKey) valid() bool {
	return topic.ValidSegment(k.App) && topic.ValidSegment(k.Channel) && topic.ValidSegment(k.JobID)
}

func (k JobKey) path() string { return k.App + "/" + k.Channel + "/" + k.JobID + "/" }

// UploadKey is where an upload of the job lands.
func (k JobKey) UploadKey(filename string) string { return UploadsPrefix + k.path() + filename }

// OutputKey is where output file (e.g. "thumb-256.webp") of the job is stored.
func (k JobKey) OutputKey(file string) string { return ConvertedPrefix + k.path() + file }

// ParseUploadKey splits uploads/{app}/{channel}/{jobId}/{filename}. The key
// is the decoded object key; the filename may be anything non-empty
// without a slash (objects can be put by other means than our grants).
func ParseUploadKey(key string) (JobKey, string, error) {
	rest, ok := strings.CutPrefix(key, UploadsPrefix)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 || parts[3] == "" {
		return JobKey{}, "", fmt.Errorf("upload key %q: want %s{app}/{channel}/{jobId}/{filename}", key, UploadsPrefix)
	}
	k := JobKey{App: parts[0], Channel: parts[1], JobID: parts[2]}
	if !k.valid() {
		return JobKey{}, "", fmt.Errorf("upload key %q: app, channel and job id must be 1-64 of [A-Za-z0-9_.-]", key)
	}
	return k, parts[3], nil
}

// ParseManifestKey splits converted/{app}/{channel}/{jobId}/manifest.json.
func ParseManifestKey(key string) (JobKey, error) {
	rest, ok := strings.CutPrefix(key, ConvertedPrefix)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 || parts[3] != ManifestName {
		return JobKey{}, fmt.Errorf("manifest key %q: want %s{app}/{channel}/{jobId}/%s", key, ConvertedPrefix, ManifestName)
	}
	k := JobKey{App: parts[0], Channel: parts[1], JobID: parts[2]}
	if !k.valid() {
		return JobKey{}, fmt.Errorf("manifest key %q: app, channel and job id must be 1-64 of [A-Za-z0-9_.-]", key)
	}
	return k, nil
}

// NewJobID returns 128 random bits as 22 URL- and topic-safe characters
// ([A-Za-z0-9_-]).
func NewJobID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("job id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// maxFilename bounds a sanitized filename, so keys stay far below S3's
// 1024-byte limit.
const maxFilename = 100

// SafeFilename reduces a browser-supplied name to its base name in
// [A-Za-z0-9._-], at most 100 bytes (the extension kept), never empty and
// never "." or "..". Other characters become '_'.
func SafeFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), ".")
	if len(s) > maxFilename {
		ext := ""
		if i := strings.LastIndexByte(s, '.'); i > 0 && len(s)-i <= 16 {
			ext = s[i:]
		}
		s = s[:maxFilename-len(ext)] + ext
	}
	if strings.Trim(s, "_") == "" {
		return "file"
	}
	return s
}
