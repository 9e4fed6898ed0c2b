// Package job is the vocabulary of a conversion job shared by the parts that
// start, run and report jobs: the object-key layout that carries a job's
// routing (uploads/, converted/, herald/jobs/), the upload and job requests
// and grants, and the errors they fail with. It is a leaf: it knows nothing
// of HTTP, S3 clients, queues or brokers.
package job

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/heraldgw/herald/topic"
)

// Key prefixes of the object-key layout (docs/design.md, "Object keys").
const (
	// UploadsPrefix starts uploads/{app}/{channel}/{jobId}/{filename}.
	UploadsPrefix = "uploads/"
	// ConvertedPrefix starts converted/{app}/{channel}/{jobId}/{output}.
	ConvertedPrefix = "converted/"
	// ReservedPrefix starts every key of the gateway's own records;
	// POST /v1/jobs refuses keys under it as input.
	ReservedPrefix = "herald/"
	// RecordsPrefix starts herald/jobs/{app}/{channel}/{jobId}/…, the
	// gateway's own records of a job.
	RecordsPrefix = ReservedPrefix + "jobs/"
	// InFlightPrefix starts herald/inflight/{app}/{jobId}: one empty
	// object per job started and not yet ended, so an app's jobs in
	// flight are counted with one listing wherever the count is needed.
	InFlightPrefix = ReservedPrefix + "inflight/"
	// ManifestName ends an external converter's outputs: an object
	// converted/{app}/{channel}/{jobId}/manifest.json.
	ManifestName = "manifest.json"
)

// Key names one job: the routing the object keys carry.
type Key struct {
	App, Channel, JobID string
}

// Valid reports whether every part is a valid topic segment, so the key
// maps onto the job's topic.
func (k Key) Valid() bool {
	return topic.ValidSegment(k.App) && topic.ValidSegment(k.Channel) && topic.ValidSegment(k.JobID)
}

// Path is "{app}/{channel}/{jobId}/", the part every prefix is followed by.
func (k Key) Path() string { return k.App + "/" + k.Channel + "/" + k.JobID + "/" }

// UploadKey is where an upload of the job lands.
func (k Key) UploadKey(filename string) string { return UploadsPrefix + k.Path() + filename }

// OutputKey is where output file (e.g. "thumb-256.webp") of the job is stored.
func (k Key) OutputKey(file string) string { return ConvertedPrefix + k.Path() + file }

// ParseUploadKey splits uploads/{app}/{channel}/{jobId}/{filename}. The key
// is the decoded object key; the filename may be anything non-empty
// without a slash (objects can be put by other means than our grants).
func ParseUploadKey(key string) (Key, string, error) {
	rest, ok := strings.CutPrefix(key, UploadsPrefix)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 || parts[3] == "" {
		return Key{}, "", fmt.Errorf("upload key %q: want %s{app}/{channel}/{jobId}/{filename}", key, UploadsPrefix)
	}
	k := Key{App: parts[0], Channel: parts[1], JobID: parts[2]}
	if !k.Valid() {
		return Key{}, "", fmt.Errorf("upload key %q: app, channel and job id must be 1-64 of [A-Za-z0-9_.-]", key)
	}
	return k, parts[3], nil
}

// ParseManifestKey splits converted/{app}/{channel}/{jobId}/manifest.json.
func ParseManifestKey(key string) (Key, error) {
	rest, ok := strings.CutPrefix(key, ConvertedPrefix)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 || parts[3] != ManifestName {
		return Key{}, fmt.Errorf("manifest key %q: want %s{app}/{channel}/{jobId}/%s", key, ConvertedPrefix, ManifestName)
	}
	k := Key{App: parts[0], Channel: parts[1], JobID: parts[2]}
	if !k.Valid() {
		return Key{}, fmt.Errorf("manifest key %q: app, channel and job id must be 1-64 of [A-Za-z0-9_.-]", key)
	}
	return k, nil
}

// IsManifestKey reports whether key has the shape of a manifest key
// (prefix and name), before ParseManifestKey checks its parts.
func IsManifestKey(key string) bool {
	return strings.HasPrefix(key, ConvertedPrefix) && strings.HasSuffix(key, "/"+ManifestName)
}

// Owner returns the app whose part of the gateway's key space (uploads/ or
// converted/) key lies in; ok is false for keys outside that space, which
// are the caller's own business.
func Owner(key string) (app string, ok bool) {
	for _, prefix := range []string{UploadsPrefix, ConvertedPrefix} {
		if rest, found := strings.CutPrefix(key, prefix); found {
			app, _, _ = strings.Cut(rest, "/")
			return app, true
		}
	}
	return "", false
}

// NewID returns 128 random bits as 22 URL- and topic-safe characters
// ([A-Za-z0-9_-]).
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("job id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// MaxFilename bounds a sanitized filename, so keys stay far below S3's
// 1024-byte limit.
const MaxFilename = 100

// SafeFilename reduces a browser-supplied name to its base name in
// [A-Za-z0-9._-], at most MaxFilename bytes (the extension kept), never
// empty and never "." or "..". Other characters become '_'.
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
	if len(s) > MaxFilename {
		ext := ""
		if i := strings.LastIndexByte(s, '.'); i > 0 && len(s)-i <= 16 {
			ext = s[i:]
		}
		s = s[:MaxFilename-len(ext)] + ext
	}
	if strings.Trim(s, "_") == "" {
		return "file"
	}
	return s
}
