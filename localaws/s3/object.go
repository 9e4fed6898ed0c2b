package s3

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldgw/herald/localaws/sigv4"
)

func (s *Service) serveObject(w http.ResponseWriter, r *http.Request, bucket, key string, q url.Values) {
	switch r.Method {
	case http.MethodPut:
		switch {
		case q.Has("uploadId") && q.Has("partNumber"):
			s.uploadPart(w, r, bucket, key, q)
		case r.Header.Get("X-Amz-Copy-Source") != "":
			s.copyObject(w, r, bucket, key)
		case q.Has("tagging"), q.Has("acl"):
			s.writeError(w, r, ErrNotImplemented)
		default:
			s.putObject(w, r, bucket, key)
		}
	case http.MethodGet, http.MethodHead:
		if q.Has("uploadId") && r.Method == http.MethodGet {
			s.listParts(w, r, bucket, key, q)
			return
		}
		s.getObject(w, r, bucket, key, q)
	case http.MethodDelete:
		if q.Has("uploadId") {
			s.abortUpload(w, r, bucket, key, q.Get("uploadId"))
			return
		}
		if err := s.removeObject(r, bucket, key); err != nil {
			s.writeError(w, r, errFor(err, bucket, key))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		switch {
		case q.Has("uploads"):
			s.createUpload(w, r, bucket, key)
		case q.Has("uploadId"):
			s.completeUpload(w, r, bucket, key, q.Get("uploadId"))
		default:
			s.writeError(w, r, ErrMethodNotAllowed)
		}
	default:
		s.writeError(w, r, ErrMethodNotAllowed)
	}
}

// bodyOf returns the verified, decoded request body.
func bodyOf(r *http.Request) io.Reader {
	res := sigv4.ResultFrom(r.Context())
	if res == nil {
		return r.Body
	}
	b, _, err := res.Body(r)
	if err != nil {
		return errReader{err}
	}
	return b
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// metaFromHeaders collects the stored headers of a PUT or multipart create.
func metaFromHeaders(h http.Header) objectMeta {
	m := objectMeta{
		ContentType:        h.Get("Content-Type"),
		ContentDisposition: h.Get("Content-Disposition"),
		CacheControl:       h.Get("Cache-Control"),
	}
	if m.ContentType == "" {
		m.ContentType = "binary/octet-stream"
	}
	var enc []string
	for _, e := range strings.Split(h.Get("Content-Encoding"), ",") {
		if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "aws-chunked") {
			enc = append(enc, e)
		}
	}
	m.ContentEncoding = strings.Join(enc, ",")
	for name, vals := range h {
		if lname := strings.ToLower(name); strings.HasPrefix(lname, "x-amz-meta-") && len(vals) > 0 {
			if m.UserMeta == nil {
				m.UserMeta = map[string]string{}
			}
			m.UserMeta[strings.TrimPrefix(lname, "x-amz-meta-")] = strings.Join(vals, ",")
		}
	}
	return m
}

// writeConditionFrom reads If-None-Match / If-Match of a write.
func writeConditionFrom(h http.Header) (condition, error) {
	var c condition
	if v := h.Get("If-None-Match"); v != "" {
		if v != "*" {
			return c, ErrNotImplemented.with("", "", nil, "If-None-Match on writes supports only *")
		}
		c.ifNoneMatchAny = true
	}
	c.ifMatch = h.Get("If-Match")
	return c, nil
}

// bodyError maps errors from receiving a body.
func bodyError(err error) error {
	if errors.Is(err, errTooLarge) {
		return ErrEntityTooLarge.with("", "", err, "")
	}
	return FromAuthError(err)
}

func (s *Service) putObject(w http.ResponseWriter, r *http.Request, bucket, key string) {
	cond, err := writeConditionFrom(r.Header)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Fail fast, before taking the body; the commit re-checks atomically.
	old, err := s.store.getObject(bucket, key)
	switch {
	case errors.Is(err, ErrNoSuchBucket):
		s.writeError(w, r, errFor(err, bucket, key))
		return
	case err == nil:
		if cerr := cond.check(&old); cerr != nil {
			s.writeError(w, r, errFor(cerr, bucket, key))
			return
		}
	case cond.ifMatch != "":
		s.writeError(w, r, errFor(ErrNoSuchKey, bucket, key))
		return
	}
	res := sigv4.ResultFrom(r.Context())
	body, size, err := res.Body(r)
	if err != nil {
		s.writeError(w, r, FromAuthError(err))
		return
	}
	if size > s.cfg.MaxObjectSize {
		s.writeError(w, r, ErrEntityTooLarge.with(bucket, key, nil, ""))
		return
	}
	rc, err := s.store.receive(body, s.cfg.MaxObjectSize)
	if err != nil {
		s.writeError(w, r, errFor(bodyError(err), bucket, key))
		return
	}
	if want := r.Header.Get("Content-Md5"); want != "" && want != base64.StdEncoding.EncodeToString(rc.md5) {
		rc.discard()
		s.writeError(w, r, ErrBadDigest.with(bucket, key, nil, ""))
		return
	}
	meta := metaFromHeaders(r.Header)
	meta.Size = rc.size
	meta.ETag = `"` + hex.EncodeToString(rc.md5) + `"`
	if err := s.commit(r, objectWrite{bucket: bucket, key: key, body: rc, meta: meta, cond: cond, event: "ObjectCreated:Put"}); err != nil {
		s.writeError(w, r, errFor(err, bucket, key))
		return
	}
	w.Header().Set("ETag", meta.ETag)
	w.WriteHeader(http.StatusOK)
}

// objectWrite is an object about to become the current version of its
// key: the received body, its metadata, the precondition, the event to
// notify and, optionally, a step in the same transaction.
type objectWrite struct {
	bucket, key string
	body        *received
	meta        objectMeta
	cond        condition
	event       string               // e.g. "ObjectCreated:Put"
	step        func(*bolt.Tx) error // nil: none
}

// commit installs a received body as bucket/key and queues its event.
func (s *Service) commit(r *http.Request, o objectWrite) error {
	id, err := s.store.install(o.body)
	if err != nil {
		o.body.discard()
		return err
	}
	meta := o.meta
	meta.File = id
	meta.Modified = s.now().UTC()
	record := s.eventRecorder(r, o.bucket, o.key, o.event, meta.Size, meta.ETag)
	err = s.store.commitObject(o.bucket, o.key, meta, o.cond, func(tx *bolt.Tx, seq uint64) error {
		if o.step != nil {
			if err := o.step(tx); err != nil {
				return err
			}
		}
		return record(tx, seq)
	})
	if err != nil {
		return err
	}
	// Debug: a job stores several objects, and the gateway's log says
	// one line per job at info.
	s.log.Debug("object stored", "bucket", o.bucket, "key", o.key, "size", meta.Size, "event", o.event)
	s.deliverNow(r)
	return nil
}

func (s *Service) removeObject(r *http.Request, bucket, key string) error {
	removed, err := s.store.deleteObject(bucket, key, s.eventRecorder(r, bucket, key, "ObjectRemoved:Delete", -1, ""))
	if err != nil {
		return err
	}
	if removed {
		s.log.Debug("object deleted", "bucket", bucket, "key", key)
		s.deliverNow(r)
	}
	return nil
}

// byteRange is an inclusive range [start, end].
type byteRange struct{ start, end int64 }

// parseRange parses a single "bytes=" range against size. ok is false when
// the header should be ignored (S3 ignores malformed ranges).
func parseRange(h string, size int64) (br byteRange, ok bool, err error) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return br, false, nil
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return br, false, nil
	}
	switch {
	case a == "":
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return br, false, nil
		}
		if n == 0 || size == 0 {
			return br, false, ErrInvalidRange
		}
		return byteRange{max(size-n, 0), size - 1}, true, nil
	default:
		start, err := strconv.ParseInt(a, 10, 64)
		if err != nil || start < 0 {
			return br, false, nil
		}
		end := size - 1
		if b != "" {
			if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
				return br, false, nil
			}
		}
		if start >= size {
			return br, false, ErrInvalidRange
		}
		return byteRange{start, min(end, size-1)}, true, nil
	}
}

func (s *Service) getObject(w http.ResponseWriter, r *http.Request, bucket, key string, q url.Values) {
	meta, f, err := s.store.openObject(bucket, key)
	if err != nil {
		s.writeError(w, r, errFor(err, bucket, key))
		return
	}
	defer f.Close()
	if status := checkReadConditions(r.Header, meta); status != 0 {
		if status == http.StatusNotModified {
			w.Header().Set("ETag", meta.ETag)
			w.WriteHeader(status)
			return
		}
		s.writeError(w, r, ErrPreconditionFailed.with(bucket, key, nil, ""))
		return
	}
	h := w.Header()
	h.Set("Content-Type", meta.ContentType)
	h.Set("ETag", meta.ETag)
	h.Set("Last-Modified", meta.Modified.UTC().Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	for name, v := range map[string]string{"Content-Encoding": meta.ContentEncoding, "Content-Disposition": meta.ContentDisposition, "Cache-Control": meta.CacheControl} {
		if v != "" {
			h.Set(name, v)
		}
	}
	for k, v := range meta.UserMeta {
		h["X-Amz-Meta-"+k] = []string{v}
	}
	// Presigned GETs may override response headers.
	for param, header := range map[string]string{"response-content-type": "Content-Type", "response-content-disposition": "Content-Disposition",
		"response-cache-control": "Cache-Control", "response-content-encoding": "Content-Encoding", "response-content-language": "Content-Language", "response-expires": "Expires"} {
		if v := q.Get(param); v != "" {
			h.Set(header, v)
		}
	}
	status := http.StatusOK
	start, length := int64(0), meta.Size
	if rh := r.Header.Get("Range"); rh != "" {
		br, ok, err := parseRange(rh, meta.Size)
		if err != nil {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", meta.Size))
			s.writeError(w, r, ErrInvalidRange.with(bucket, key, nil, ""))
			return
		}
		if ok {
			status = http.StatusPartialContent
			start, length = br.start, br.end-br.start+1
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", br.start, br.end, meta.Size))
		}
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, io.NewSectionReader(f, start, length)); err != nil {
		s.log.Debug("object read interrupted", "bucket", bucket, "key", key, "err", err)
	}
}

// checkReadConditions evaluates GET/HEAD conditional headers; 0 means go on.
func checkReadConditions(h http.Header, m objectMeta) int {
	etagMatches := func(list string) bool {
		for _, e := range strings.Split(list, ",") {
			e = strings.TrimSpace(e)
			if e == "*" || e == m.ETag || `"`+e+`"` == m.ETag {
				return true
			}
		}
		return false
	}
	mod := m.Modified.Truncate(time.Second)
	if v := h.Get("If-Match"); v != "" && !etagMatches(v) {
		return http.StatusPreconditionFailed
	}
	if v := h.Get("If-Unmodified-Since"); v != "" && h.Get("If-Match") == "" {
		if t, err := http.ParseTime(v); err == nil && mod.After(t) {
			return http.StatusPreconditionFailed
		}
	}
	if v := h.Get("If-None-Match"); v != "" && etagMatches(v) {
		return http.StatusNotModified
	}
	if v := h.Get("If-Modified-Since"); v != "" && h.Get("If-None-Match") == "" {
		if t, err := http.ParseTime(v); err == nil && !mod.After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

func (s *Service) copyObject(w http.ResponseWriter, r *http.Request, bucket, key string) {
	src := r.Header.Get("X-Amz-Copy-Source")
	if i := strings.Index(src, "?"); i >= 0 {
		src = src[:i]
	}
	dec, err := url.PathUnescape(src)
	if err != nil {
		s.writeError(w, r, ErrInvalidArgument.with(bucket, key, err, "Invalid copy source encoding"))
		return
	}
	srcBucket, srcKey := splitPath("/" + strings.TrimPrefix(dec, "/"))
	if srcBucket == "" || srcKey == "" {
		s.writeError(w, r, ErrInvalidArgument.with(bucket, key, nil, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"))
		return
	}
	cond, err := writeConditionFrom(r.Header)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	directive := r.Header.Get("X-Amz-Metadata-Directive")
	if srcBucket == bucket && srcKey == key && directive != "REPLACE" {
		s.writeError(w, r, ErrInvalidRequest.with(bucket, key, nil, "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."))
		return
	}
	srcMeta, f, err := s.store.openObject(srcBucket, srcKey)
	if err != nil {
		s.writeError(w, r, errFor(err, srcBucket, srcKey))
		return
	}
	rc, err := s.store.receive(f, -1)
	f.Close()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	meta := srcMeta
	if directive == "REPLACE" {
		meta = metaFromHeaders(r.Header)
	}
	meta.Size = rc.size
	meta.ETag = srcMeta.ETag
	if !strings.Contains(srcMeta.ETag, "-") {
		meta.ETag = `"` + hex.EncodeToString(rc.md5) + `"`
	}
	if err := s.commit(r, objectWrite{bucket: bucket, key: key, body: rc, meta: meta, cond: cond, event: "ObjectCreated:Copy"}); err != nil {
		s.writeError(w, r, errFor(err, bucket, key))
		return
	}
	writeXML(w, http.StatusOK, copyObjectResult{Xmlns: xmlns, LastModified: s3Time(s.now()), ETag: meta.ETag})
}

// md5Hex is the hex MD5 of b.
func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}
