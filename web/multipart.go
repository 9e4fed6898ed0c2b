package web

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/tenant"
)

// MultipartUploader runs resumable browser uploads (S3 multipart).
type MultipartUploader interface {
	CreateMultipart(ctx context.Context, req job.MultipartRequest) (job.MultipartUpload, error)
	SignPart(ctx context.Context, ref job.UploadRef, partNumber int) (job.SignedPart, error)
	ListParts(ctx context.Context, ref job.UploadRef) ([]job.Part, error)
	CompleteMultipart(ctx context.Context, ref job.UploadRef, parts []job.Part) (job.Completed, error)
	AbortMultipart(ctx context.Context, ref job.UploadRef) error
}

// MaxCompleteBody bounds the body of a multipart completion: 10,000 parts
// of {"PartNumber":…,"ETag":"…"}.
const MaxCompleteBody = 1 << 20

// companionRoutes are the routes Uppy's @uppy/aws-s3 calls in its
// Companion mode, relative to its endpoint. They are served twice: under
// /v1/uploads with the session token in an Authorization header, and
// under /v1/uploads/{token} with an upload token in the path, because
// @uppy/aws-s3 6 sends no headers of its caller's to its endpoint.
var companionRoutes = []struct {
	method, path, name string
	handle             func(*Server, http.ResponseWriter, *http.Request, uploader) error
}{
	{"GET", "/s3/params", "uploads_params", (*Server).handleS3Params},
	{"POST", "/s3/multipart", "uploads_create", (*Server).handleMultipartCreate},
	{"GET", "/s3/multipart/{uploadId}/{partNumber}", "uploads_sign_part", (*Server).handleSignPart},
	{"GET", "/s3/multipart/{uploadId}", "uploads_list_parts", (*Server).handleListParts},
	{"POST", "/s3/multipart/{uploadId}/complete", "uploads_complete", (*Server).handleMultipartComplete},
	{"DELETE", "/s3/multipart/{uploadId}", "uploads_abort", (*Server).handleMultipartAbort},
}

func (s *Server) uploadRoutes() {
	s.mux.Handle("POST /v1/uploads/endpoint", s.api("uploads_endpoint", s.handleUploadEndpoint))
	for _, rt := range companionRoutes {
		for _, base := range []string{"/v1/uploads", "/v1/uploads/{token}"} {
			h := rt.handle
			s.mux.Handle(rt.method+" "+base+rt.path, s.api(rt.name, func(w http.ResponseWriter, r *http.Request) error {
				u, err := s.uploaderFor(r)
				if err != nil {
					return err
				}
				return h(s, w, r, u)
			}))
		}
	}
}

// uploader is an authenticated caller of the upload routes: its session
// and its app.
type uploader struct {
	claims tenant.Claims
	app    *tenant.App
}

// owns reports whether key is an upload of the caller's channel.
func (u uploader) owns(key string) bool {
	k, _, err := job.ParseUploadKey(key)
	return err == nil && k.App == u.claims.App && k.Channel == u.claims.Channel
}

// uploaderFor authenticates a call of the upload routes: an upload token in
// the path, or the session token as Bearer.
func (s *Server) uploaderFor(r *http.Request) (uploader, error) {
	var claims tenant.Claims
	var err error
	if tok := r.PathValue("token"); tok != "" {
		claims, err = s.cfg.Registry.VerifyUploadToken(tok, s.now())
	} else if tok, ok := bearer(r); ok {
		claims, err = s.verifyAnyApp(tok)
	} else {
		return uploader{}, apiError(CodeUnauthorized, nil, "Authorization: Bearer <session token> is required (or an upload endpoint from POST /v1/uploads/endpoint)")
	}
	if err != nil {
		return uploader{}, err
	}
	app, err := s.browserApp(claims, r)
	if err != nil {
		return uploader{}, err
	}
	if s.cfg.Uploads == nil || s.cfg.Multipart == nil {
		return uploader{}, apiError(CodeUnavailable, nil, "uploads are not configured on this gateway")
	}
	return uploader{claims: claims, app: app}, nil
}

// uploadEndpoint is the answer of POST /v1/uploads/endpoint: what an upload
// widget needs to upload for this session.
type uploadEndpoint struct {
	// CompanionEndpoint is @uppy/aws-s3's companionEndpoint.
	CompanionEndpoint string    `json:"companionEndpoint"`
	ExpiresAt         time.Time `json:"expiresAt"`
	MaxUploadBytes    int64     `json:"maxUploadBytes"`
	MaxObjectBytes    int64     `json:"maxObjectBytes"`
	AllowedTypes      []string  `json:"allowedTypes"`
}

// handleUploadEndpoint mints an upload token for the Bearer session and
// answers the endpoint that carries it.
func (s *Server) handleUploadEndpoint(w http.ResponseWriter, r *http.Request) error {
	claims, app, err := s.bearerSession(r)
	if err != nil {
		return err
	}
	up, exp, err := s.cfg.Registry.MintUploadToken(claims, s.now())
	if err != nil {
		return err
	}
	types := app.AllowedTypes
	if types == nil {
		types = []string{}
	}
	writeJSON(w, http.StatusCreated, uploadEndpoint{
		CompanionEndpoint: baseURL(r) + "/v1/uploads/" + up, ExpiresAt: exp.UTC(),
		MaxUploadBytes: app.MaxUploadBytes, MaxObjectBytes: app.MaxObjectBytes, AllowedTypes: types,
	})
	return nil
}

// baseURL is scheme://host of the gateway as the caller reached it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// paramsResponse is Companion's answer for a single-request upload: a
// presigned POST (url and form fields). Key and jobId are Herald's.
type paramsResponse struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Fields  map[string]string `json:"fields"`
	Expires int64             `json:"expires"`
	Key     string            `json:"key"`
	JobID   string            `json:"jobId"`
}

// handleS3Params: GET …/s3/params?filename=&type=&metadata[size]= → a
// presigned POST, the same grant as POST /v1/uploads.
func (s *Server) handleS3Params(w http.ResponseWriter, r *http.Request, u uploader) error {
	q := r.URL.Query()
	size, err := declaredSize(q.Get("metadata[size]"))
	if err != nil {
		return err
	}
	if err := s.takeUploadGrant(u.app, u.claims.Channel); err != nil {
		return err
	}
	g, err := s.cfg.Uploads.GrantUpload(r.Context(), job.UploadRequest{
		App: u.claims.App, Channel: u.claims.Channel, Filename: q.Get("filename"), ContentType: q.Get("type"), Size: size,
		MaxBytes: u.app.MaxUploadBytes, AllowedTypes: u.app.AllowedTypes,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, paramsResponse{Method: "POST", URL: g.URL, Fields: g.Fields,
		Expires: expiresIn(g.ExpiresAt, s.now()), Key: g.Key, JobID: g.JobID})
	return nil
}

type createRequest struct {
	Filename string         `json:"filename"`
	Type     string         `json:"type"`
	Metadata map[string]any `json:"metadata"`
}

// handleMultipartCreate: POST …/s3/multipart {filename, type, metadata} →
// {key, uploadId}. The gateway chooses the key.
func (s *Server) handleMultipartCreate(w http.ResponseWriter, r *http.Request, u uploader) error {
	var req createRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	var size int64
	if v, ok := req.Metadata["size"]; ok {
		var err error
		if size, err = declaredSize(fmt.Sprint(v)); err != nil {
			return err
		}
	}
	if err := s.takeUploadGrant(u.app, u.claims.Channel); err != nil {
		return err
	}
	up, err := s.cfg.Multipart.CreateMultipart(r.Context(), job.MultipartRequest{
		App: u.claims.App, Channel: u.claims.Channel, Filename: req.Filename, ContentType: req.Type, Size: size,
		Limits: u.limits(),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, up)
	return nil
}

type signedPartResponse struct {
	URL     string `json:"url"`
	Expires int64  `json:"expires"`
}

// handleSignPart: GET …/s3/multipart/{uploadId}/{partNumber}?key= →
// {url, expires}, a presigned UploadPart.
func (s *Server) handleSignPart(w http.ResponseWriter, r *http.Request, u uploader) error {
	ref, err := u.ref(r)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(r.PathValue("partNumber"))
	if err != nil {
		return apiError(CodeBadRequest, err, "part number %q is not a number", r.PathValue("partNumber"))
	}
	p, err := s.cfg.Multipart.SignPart(r.Context(), ref, n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, signedPartResponse{URL: p.URL, Expires: expiresIn(p.Expires, s.now())})
	return nil
}

// handleListParts: GET …/s3/multipart/{uploadId}?key= → [{PartNumber,
// Size, ETag}], what a resuming client need not send again.
func (s *Server) handleListParts(w http.ResponseWriter, r *http.Request, u uploader) error {
	ref, err := u.ref(r)
	if err != nil {
		return err
	}
	parts, err := s.cfg.Multipart.ListParts(r.Context(), ref)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, parts)
	return nil
}

type completeRequest struct {
	Parts []job.Part `json:"parts"`
}

// handleMultipartComplete: POST …/s3/multipart/{uploadId}/complete?key=
// {parts} → {location, key, bucket}. The object's creation starts the job.
func (s *Server) handleMultipartComplete(w http.ResponseWriter, r *http.Request, u uploader) error {
	ref, err := u.ref(r)
	if err != nil {
		return err
	}
	var req completeRequest
	if err := decodeJSONMax(w, r, &req, MaxCompleteBody); err != nil {
		return err
	}
	done, err := s.cfg.Multipart.CompleteMultipart(r.Context(), ref, req.Parts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, done)
	return nil
}

// handleMultipartAbort: DELETE …/s3/multipart/{uploadId}?key= → 204.
func (s *Server) handleMultipartAbort(w http.ResponseWriter, r *http.Request, u uploader) error {
	ref, err := u.ref(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Multipart.AbortMultipart(r.Context(), ref); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (u uploader) limits() job.Limits {
	return job.Limits{MaxBytes: u.app.MaxObjectBytes, AllowedTypes: u.app.AllowedTypes}
}

// ref reads the upload a call names ({uploadId} and ?key=) and checks that
// it belongs to the caller's channel.
func (u uploader) ref(r *http.Request) (job.UploadRef, error) {
	key := r.URL.Query().Get("key")
	if key == "" {
		return job.UploadRef{}, apiError(CodeBadRequest, nil, `query parameter "key" is required`)
	}
	if !u.owns(key) {
		return job.UploadRef{}, apiError(CodeForbidden, nil, "key %q is not an upload of this session's channel", key)
	}
	return job.UploadRef{Key: key, UploadID: r.PathValue("uploadId"), Limits: u.limits()}, nil
}

// declaredSize parses a size the client declared ("" when it declared
// none, which is 0).
func declaredSize(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f != math.Trunc(f) || f > math.MaxInt64/2 {
		return 0, apiError(CodeBadRequest, err, "declared size %q is not a size in bytes", v)
	}
	if f == 0 {
		return 0, apiError(CodeBadRequest, nil, "the file is empty (0 bytes): there is nothing to convert")
	}
	return int64(f), nil
}

// expiresIn is Companion's "expires": seconds from now.
func expiresIn(t, now time.Time) int64 {
	return int64(math.Ceil(t.Sub(now).Seconds()))
}
