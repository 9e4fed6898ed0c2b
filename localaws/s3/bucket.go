package s3

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
)

var (
	bucketNameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	badBucketNameRE = regexp.MustCompile(`\.\.|^\d+\.\d+\.\d+\.\d+$`)
)

// validBucketName applies S3's naming rules; the name is also used as a
// bbolt bucket name, never as a path.
func validBucketName(name string) bool {
	return bucketNameRE.MatchString(name) && !badBucketNameRE.MatchString(name)
}

func (s *Service) serveBucket(w http.ResponseWriter, r *http.Request, bucket string, q url.Values) {
	switch {
	case q.Has("cors"):
		s.bucketCORS(w, r, bucket)
	case q.Has("notification"):
		s.bucketNotification(w, r, bucket)
	case q.Has("location") && r.Method == http.MethodGet:
		if _, err := s.store.getBucket(bucket); err != nil {
			s.writeError(w, r, errFor(err, bucket, ""))
			return
		}
		region := s.cfg.Region
		if region == "us-east-1" {
			region = ""
		}
		writeXML(w, http.StatusOK, locationConstraint{Xmlns: xmlns, Region: region})
	case q.Has("uploads") && r.Method == http.MethodGet:
		s.writeError(w, r, ErrNotImplemented)
	case q.Has("delete") && r.Method == http.MethodPost:
		s.deleteObjects(w, r, bucket)
	case r.Method == http.MethodPut:
		s.createBucket(w, r, bucket)
	case r.Method == http.MethodHead:
		if _, err := s.store.getBucket(bucket); err != nil {
			s.writeError(w, r, errFor(err, bucket, ""))
			return
		}
		w.Header().Set("X-Amz-Bucket-Region", s.cfg.Region)
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodDelete:
		if err := s.store.deleteBucket(bucket); err != nil {
			s.writeError(w, r, errFor(err, bucket, ""))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet:
		s.listObjects(w, r, bucket, q)
	default:
		s.writeError(w, r, ErrMethodNotAllowed)
	}
}

// errFor attaches the resource to a sentinel error.
func errFor(err error, bucket, key string) error {
	var e *Error
	if errors.As(err, &e) && e.Bucket == "" {
		return e.with(bucket, key, e.Cause, "")
	}
	return err
}

func (s *Service) createBucket(w http.ResponseWriter, r *http.Request, bucket string) {
	if !validBucketName(bucket) {
		s.writeError(w, r, ErrInvalidBucketName.with(bucket, "", nil, ""))
		return
	}
	// The body (CreateBucketConfiguration) only names a region; read it so
	// signature checks on the body complete.
	if _, err := io.Copy(io.Discard, io.LimitReader(bodyOf(r), 64<<10)); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.store.createBucket(bucket, s.now()); err != nil {
		s.writeError(w, r, errFor(err, bucket, ""))
		return
	}
	s.log.Info("bucket created", "bucket", bucket)
	w.Header().Set("Location", "/"+bucket)
	w.WriteHeader(http.StatusOK)
}

// EnsureBucket creates bucket if it does not exist.
func (s *Service) EnsureBucket(bucket string) error {
	if !validBucketName(bucket) {
		return ErrInvalidBucketName.with(bucket, "", nil, "")
	}
	if err := s.store.createBucket(bucket, s.now()); err != nil && !errors.Is(err, ErrBucketAlreadyOwned) {
		return err
	}
	return nil
}

func (s *Service) listBuckets(w http.ResponseWriter, r *http.Request) {
	bs, err := s.store.listBuckets()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := listAllMyBucketsResult{Xmlns: xmlns, Owner: owner{ID: s.ownerID(), DisplayName: "localaws"}}
	for _, b := range bs {
		out.Buckets = append(out.Buckets, struct {
			Name         string `xml:"Name"`
			CreationDate string `xml:"CreationDate"`
		}{b.Name, s3Time(b.Created)})
	}
	writeXML(w, http.StatusOK, out)
}

func (s *Service) ownerID() string { return "localaws" + s.cfg.AccountID }

// readXML decodes a small XML request body into v.
func readXML(r *http.Request, v any) error {
	const maxXML = 1 << 20
	// Read one byte past the bound: a body within it is read to EOF, which
	// is where its payload hash is checked; a longer one is refused rather
	// than decoded from an unverified prefix.
	b, err := io.ReadAll(io.LimitReader(bodyOf(r), maxXML+1))
	if err != nil {
		return err
	}
	if len(b) > maxXML {
		return ErrMalformedXML.with("", "", nil, "The XML you provided was larger than the maximum of 1 MiB.")
	}
	if err := xml.Unmarshal(b, v); err != nil {
		return ErrMalformedXML.with("", "", err, "")
	}
	return nil
}

func (s *Service) deleteObjects(w http.ResponseWriter, r *http.Request, bucket string) {
	var req deleteRequest
	if err := readXML(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.Objects) > 1000 {
		s.writeError(w, r, ErrMalformedXML)
		return
	}
	out := deleteResult{Xmlns: xmlns}
	for _, o := range req.Objects {
		if err := s.removeObject(r, bucket, o.Key); err != nil {
			e := FromAuthError(errFor(err, bucket, o.Key))
			out.Errors = append(out.Errors, struct {
				Key     string `xml:"Key"`
				Code    string `xml:"Code"`
				Message string `xml:"Message"`
			}{o.Key, e.Code, e.Message})
			continue
		}
		if !req.Quiet {
			out.Deleted = append(out.Deleted, struct {
				Key string `xml:"Key"`
			}{o.Key})
		}
	}
	writeXML(w, http.StatusOK, out)
}
