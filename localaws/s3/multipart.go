package s3

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldgw/herald/localaws/sigv4"
)

// minPartSize is S3's minimum size of every part but the last.
const minPartSize = 5 << 20

func (s *store) getUpload(id string) (uploadMeta, error) {
	var u uploadMeta
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktUploads).Get([]byte(id))
		if v == nil {
			return ErrNoSuchUpload
		}
		return json.Unmarshal(v, &u)
	})
	return u, err
}

func (s *store) putUpload(tx *bolt.Tx, id string, u uploadMeta) error {
	v, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return tx.Bucket(bktUploads).Put([]byte(id), v)
}

// validUploadID keeps upload ids (used as directory names) to the hex ids
// this store issues.
func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func (s *Service) upload(bucket, key, id string) (uploadMeta, error) {
	if !validUploadID(id) {
		return uploadMeta{}, ErrNoSuchUpload
	}
	u, err := s.store.getUpload(id)
	if err != nil {
		return u, err
	}
	if u.Bucket != bucket || u.Key != key {
		return u, ErrNoSuchUpload
	}
	return u, nil
}

func (s *Service) createUpload(w http.ResponseWriter, r *http.Request, bucket, key string) {
	if _, err := s.store.getBucket(bucket); err != nil {
		s.writeError(w, r, errFor(err, bucket, key))
		return
	}
	id := newID()
	u := uploadMeta{Bucket: bucket, Key: key, Initiated: s.now().UTC(), Object: metaFromHeaders(r.Header)}
	if err := os.MkdirAll(filepath.Join(s.store.dir, "parts", id), 0o755); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.store.db.Update(func(tx *bolt.Tx) error { return s.store.putUpload(tx, id, u) }); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeXML(w, http.StatusOK, initiateMultipartUploadResult{Xmlns: xmlns, Bucket: bucket, Key: key, UploadID: id})
}

func (s *Service) uploadPart(w http.ResponseWriter, r *http.Request, bucket, key string, q url.Values) {
	id := q.Get("uploadId")
	n, err := strconv.Atoi(q.Get("partNumber"))
	if err != nil || n < 1 || n > 10000 {
		s.writeError(w, r, ErrInvalidArgument.with(bucket, key, err, "Part number must be an integer between 1 and 10000, inclusive"))
		return
	}
	if _, err := s.upload(bucket, key, id); err != nil {
		s.writeError(w, r, errFor(err, bucket, key))
		return
	}
	body, _, err := sigv4.ResultFrom(r.Context()).Body(r)
	if err != nil {
		s.writeError(w, r, FromAuthError(err))
		return
	}
	rc, err := s.store.receive(body, s.cfg.MaxObjectSize)
	if err != nil {
		s.metrics.parts.WithLabelValues("failed").Inc()
		s.writeError(w, r, errFor(bodyError(err), bucket, key))
		return
	}
	etag := `"` + hex.EncodeToString(rc.md5) + `"`
	if err := os.Rename(rc.path, s.store.partPath(id, n)); err != nil {
		rc.discard()
		s.writeError(w, r, fmt.Errorf("install part %d of %s: %w", n, id, err))
		return
	}
	syncDir(filepath.Dir(s.store.partPath(id, n)))
	err = s.store.db.Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktUploads).Get([]byte(id))
		if v == nil {
			return ErrNoSuchUpload
		}
		var u uploadMeta
		if err := json.Unmarshal(v, &u); err != nil {
			return err
		}
		if u.Parts == nil {
			u.Parts = map[int]partMeta{}
		}
		u.Parts[n] = partMeta{ETag: etag, Size: rc.size, Modified: s.now().UTC()}
		return s.store.putUpload(tx, id, u)
	})
	if err != nil {
		s.metrics.parts.WithLabelValues("failed").Inc()
		s.writeError(w, r, errFor(err, bucket, key))
		return
	}
	s.metrics.parts.WithLabelValues("stored").Inc()
	s.log.Debug("part stored", "bucket", bucket, "key", key, "upload", id, "part", n, "size", rc.size)
	w.Header().Set("ETag", etag)
	w.WriteHeader(http.StatusOK)
}

func (s *Service) completeUpload(w http.ResponseWriter, r *http.Request, bucket, key, id string) {
	u, err := s.upload(bucket, key, id)
	if err != nil {
		s.writeError(w, r, errFor(err, bucket, key))
		return
	}
	var req completeMultipartUpload
	if err := readXML(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.Parts) == 0 {
		s.writeError(w, r, ErrMalformedXML.with(bucket, key, nil, "The XML you provided was not well-formed or did not validate against our published schema"))
		return
	}
	cond, err := writeConditionFrom(r.Header)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Validate the part list before touching any data.
	files := make([]string, 0, len(req.Parts))
	sums := md5.New()
	prev := 0
	for _, p := range req.Parts {
		if p.PartNumber <= prev {
			s.writeError(w, r, ErrInvalidPartOrder.with(bucket, key, nil, ""))
			return
		}
		prev = p.PartNumber
	}
	for i, p := range req.Parts {
		pm, ok := u.Parts[p.PartNumber]
		if !ok || normalizeETag(p.ETag) != pm.ETag {
			s.writeError(w, r, ErrInvalidPart.with(bucket, key, nil, ""))
			return
		}
		if i < len(req.Parts)-1 && pm.Size < minPartSize {
			s.writeError(w, r, ErrEntityTooSmall.with(bucket, key, nil, ""))
			return
		}
		raw, _ := hex.DecodeString(strings.Trim(pm.ETag, `"`))
		sums.Write(raw)
		files = append(files, s.store.partPath(id, p.PartNumber))
	}
	rc, err := s.store.receive(&concatReader{files: files}, -1)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("assemble upload %s: %w", id, err))
		return
	}
	meta := u.Object
	meta.Size = rc.size
	meta.ETag = fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(sums.Sum(nil)), len(req.Parts))
	// The upload record goes in the same transaction as the object. It must
	// still be there: an abort or a second complete that won the race since
	// the parts were read has already ended this upload.
	dropUpload := func(tx *bolt.Tx) error {
		b := tx.Bucket(bktUploads)
		if b.Get([]byte(id)) == nil {
			return ErrNoSuchUpload
		}
		return b.Delete([]byte(id))
	}
	if err := s.commit(r, objectWrite{bucket: bucket, key: key, body: rc, meta: meta, cond: cond, event: "ObjectCreated:CompleteMultipartUpload", step: dropUpload}); err != nil {
		s.writeError(w, r, errFor(err, bucket, key))
		return
	}
	_ = os.RemoveAll(filepath.Join(s.store.dir, "parts", id))
	loc := "/" + bucket + "/" + key
	if r.Host != "" {
		loc = "http://" + r.Host + loc
	}
	writeXML(w, http.StatusOK, completeMultipartUploadResult{Xmlns: xmlns, Location: loc, Bucket: bucket, Key: key, ETag: meta.ETag})
}

func normalizeETag(e string) string {
	e = strings.TrimSpace(e)
	if !strings.HasPrefix(e, `"`) {
		e = `"` + e + `"`
	}
	return e
}

// concatReader reads files one after another, opening each lazily.
type concatReader struct {
	files []string
	cur   *os.File
}

func (c *concatReader) Read(p []byte) (int, error) {
	for {
		if c.cur == nil {
			if len(c.files) == 0 {
				return 0, io.EOF
			}
			f, err := os.Open(c.files[0])
			if err != nil {
				return 0, err
			}
			c.cur, c.files = f, c.files[1:]
		}
		n, err := c.cur.Read(p)
		if errors.Is(err, io.EOF) {
			c.cur.Close()
			c.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (s *Service) abortUpload(w http.ResponseWriter, r *http.Request, bucket, key, id string) {
	if _, err := s.upload(bucket, key, id); err != nil {
		s.writeError(w, r, errFor(err, bucket, key))
		return
	}
	err := s.store.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktUploads).Delete([]byte(id)) })
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	_ = os.RemoveAll(filepath.Join(s.store.dir, "parts", id))
	s.metrics.aborted.WithLabelValues(abortRequest).Inc()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) listParts(w http.ResponseWriter, r *http.Request, bucket, key string, q url.Values) {
	id := q.Get("uploadId")
	u, err := s.upload(bucket, key, id)
	if err != nil {
		s.writeError(w, r, errFor(err, bucket, key))
		return
	}
	maxParts := 1000
	if v := q.Get("max-parts"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			maxParts = min(n, 1000)
		}
	}
	marker, _ := strconv.Atoi(q.Get("part-number-marker"))
	nums := make([]int, 0, len(u.Parts))
	for n := range u.Parts {
		if n > marker {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	out := listPartsResult{Xmlns: xmlns, Bucket: bucket, Key: key, UploadID: id, PartNumberMarker: marker, MaxParts: maxParts, StorageClass: "STANDARD"}
	if len(nums) > maxParts {
		nums, out.IsTruncated = nums[:maxParts], true
	}
	for _, n := range nums {
		p := u.Parts[n]
		out.Parts = append(out.Parts, struct {
			PartNumber   int    `xml:"PartNumber"`
			LastModified string `xml:"LastModified"`
			ETag         string `xml:"ETag"`
			Size         int64  `xml:"Size"`
		}{n, s3Time(p.Modified), p.ETag, p.Size})
		out.NextPartNumberMarker = n
	}
	writeXML(w, http.StatusOK, out)
}
