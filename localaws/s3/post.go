package s3

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/heraldgw/herald/localaws/sigv4"
)

// Bounds on the form fields that precede the file in a POST upload (S3
// allows 20 KB of them).
const (
	maxPostFieldBytes = 20 << 10
	maxPostFields     = 100
)

func isMultipartForm(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "multipart/form-data"
}

// postForm is the fields of a POST upload and its file part.
type postForm struct {
	fields   map[string]string // lower-case names
	file     io.Reader
	filename string
}

func readPostForm(r *http.Request) (*postForm, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, ErrMalformedPOST(err)
	}
	f := &postForm{fields: map[string]string{}}
	total := 0
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, ErrInvalidArgument.with("", "", nil, "POST requires exactly one file upload per request.")
		}
		if err != nil {
			return nil, ErrMalformedPOST(err)
		}
		name := strings.ToLower(part.FormName())
		if name == "file" {
			f.file, f.filename = part, path.Base(strings.ReplaceAll(part.FileName(), `\`, "/"))
			if f.filename == "." || f.filename == "/" {
				f.filename = ""
			}
			return f, nil
		}
		b, err := io.ReadAll(io.LimitReader(part, int64(maxPostFieldBytes-total)+1))
		if err != nil {
			return nil, ErrMalformedPOST(err)
		}
		total += len(b)
		if total > maxPostFieldBytes || len(f.fields) >= maxPostFields {
			return nil, ErrInvalidArgument.with("", "", nil, "Your POST request fields preceding the upload file were too large.")
		}
		if _, dup := f.fields[name]; !dup {
			f.fields[name] = string(b)
		}
	}
}

// ErrMalformedPOST wraps a form decoding error as S3's MalformedPOSTRequest.
func ErrMalformedPOST(cause error) *Error {
	return &Error{Code: "MalformedPOSTRequest", Status: 400, Message: "The body of your POST request is not well-formed multipart/form-data.", Cause: cause}
}

// verifyPostSignature checks x-amz-signature over the policy with the
// SigV4 signing key of x-amz-credential.
func (s *Service) verifyPostSignature(f *postForm) (sigv4.Credential, error) {
	if f.fields["policy"] == "" {
		return sigv4.Credential{}, ErrAccessDenied.with("", "", nil, "Anonymous POST uploads are not allowed; a signed policy is required.")
	}
	if alg := f.fields["x-amz-algorithm"]; alg != sigv4.Algorithm {
		return sigv4.Credential{}, ErrInvalidArgument.with("", "", nil, "x-amz-algorithm must be "+sigv4.Algorithm)
	}
	cred, err := sigv4.ParseCredential(f.fields["x-amz-credential"])
	if err != nil {
		return cred, ErrInvalidArgument.with("", "", err, "x-amz-credential is malformed")
	}
	if cred.Service != "s3" {
		return cred, ErrInvalidArgument.with("", "", nil, "x-amz-credential must be scoped to service s3")
	}
	key, err := s.cfg.Verifier.SigningKey(cred)
	if err != nil {
		return cred, FromAuthError(err)
	}
	want := sigv4.Sign(key, f.fields["policy"])
	got := strings.ToLower(f.fields["x-amz-signature"])
	// Constant-time, so response timing does not reveal a matching prefix.
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return cred, ErrSignatureDoesNotMatch
	}
	return cred, nil
}

func (s *Service) postObject(w http.ResponseWriter, r *http.Request, bucket string) {
	if _, err := s.store.getBucket(bucket); err != nil {
		s.writeError(w, r, errFor(err, bucket, ""))
		return
	}
	f, err := readPostForm(r)
	if err != nil {
		s.writeError(w, r, errFor(err, bucket, ""))
		return
	}
	cred, err := s.verifyPostSignature(f)
	if err != nil {
		s.writeError(w, r, errFor(err, bucket, ""))
		return
	}
	policy, err := ParsePostPolicy(f.fields["policy"])
	if err != nil {
		s.writeError(w, r, ErrInvalidPolicyDocument.with(bucket, "", err, "Invalid Policy: "+err.Error()))
		return
	}
	key := strings.ReplaceAll(f.fields["key"], "${filename}", f.filename)
	if key == "" {
		s.writeError(w, r, ErrInvalidArgument.with(bucket, "", nil, "Bucket POST must contain a field named 'key'."))
		return
	}
	if len(key) > 1024 {
		s.writeError(w, r, ErrKeyTooLong.with(bucket, "", nil, ""))
		return
	}
	checked := make(map[string]string, len(f.fields)+1)
	for k, v := range f.fields {
		checked[k] = v
	}
	checked["key"], checked["bucket"] = key, bucket
	minLen, maxLen, err := policy.Check(checked, s.now())
	if err != nil {
		s.writeError(w, r, errFor(err, bucket, key))
		return
	}
	limit := s.cfg.MaxObjectSize
	if maxLen >= 0 && maxLen < limit {
		limit = maxLen
	}
	rc, err := s.store.receive(f.file, limit)
	if err != nil {
		s.writeError(w, r, errFor(bodyError(err), bucket, key))
		return
	}
	if rc.size < minLen {
		rc.discard()
		s.writeError(w, r, ErrEntityTooSmall.with(bucket, key, nil, ""))
		return
	}
	h := http.Header{}
	for k, v := range f.fields {
		switch {
		case k == "content-type", k == "cache-control", k == "content-disposition", k == "content-encoding", strings.HasPrefix(k, "x-amz-meta-"):
			h.Set(k, v)
		}
	}
	meta := metaFromHeaders(h)
	meta.Size = rc.size
	meta.ETag = `"` + hex.EncodeToString(rc.md5) + `"`
	// The principal of the event is the policy's signer.
	r = r.WithContext(sigv4.WithResult(r.Context(), &sigv4.Result{Credential: cred}))
	if err := s.commit(r, objectWrite{bucket: bucket, key: key, body: rc, meta: meta, event: "ObjectCreated:Post"}); err != nil {
		s.writeError(w, r, errFor(err, bucket, key))
		return
	}
	s.postResponse(w, r, f, bucket, key, meta.ETag)
}

func (s *Service) postResponse(w http.ResponseWriter, r *http.Request, f *postForm, bucket, key, etag string) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	location := fmt.Sprintf("%s://%s/%s/%s", scheme, r.Host, bucket, (&url.URL{Path: key}).EscapedPath())
	w.Header().Set("ETag", etag)
	w.Header().Set("Location", location)
	if redirect := f.fields["success_action_redirect"]; redirect != "" {
		if u, err := url.Parse(redirect); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			q := u.Query()
			q.Set("bucket", bucket)
			q.Set("key", key)
			q.Set("etag", etag)
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.String(), http.StatusSeeOther)
			return
		}
	}
	switch f.fields["success_action_status"] {
	case "200":
		w.WriteHeader(http.StatusOK)
	case "201":
		writeXML(w, http.StatusCreated, postResponse{Location: location, Bucket: bucket, Key: key, ETag: etag})
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
