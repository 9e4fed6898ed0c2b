package web

import (
	"context"
	"net/http"

	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/tenant"
)

// Uploader grants direct-to-S3 uploads.
type Uploader interface {
	GrantUpload(ctx context.Context, req job.UploadRequest) (job.UploadGrant, error)
}

// JobSubmitter starts a conversion of an existing object.
type JobSubmitter interface {
	SubmitJob(ctx context.Context, req job.Request) (jobID string, err error)
}

// JobReader reports a job's state from its records.
type JobReader interface {
	JobStatus(ctx context.Context, app, jobID string) (job.Status, error)
}

func (s *Server) handleUploads(w http.ResponseWriter, r *http.Request) error {
	tok, ok := bearer(r)
	if !ok {
		return apiError(CodeUnauthorized, nil, "Authorization: Bearer <session token> is required")
	}
	var req job.UploadRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	claims, err := s.verifyAnyApp(tok)
	if err != nil {
		return err
	}
	if s.cfg.Uploads == nil {
		return apiError(CodeUnavailable, nil, "uploads are not configured on this gateway")
	}
	app, err := s.browserApp(claims, r)
	if err != nil {
		return err
	}
	switch {
	case req.Filename == "":
		return apiError(CodeBadRequest, nil, `"filename" is required`)
	case req.Size == 0:
		return apiError(CodeBadRequest, nil, "%q is empty (0 bytes): there is nothing to convert", req.Filename)
	case req.Size < 0:
		return apiError(CodeBadRequest, nil, `"size" must be the file's size in bytes, got %d`, req.Size)
	case req.Size > app.MaxUploadBytes:
		return apiError(CodeTooLarge, nil, "%q is %d bytes, over this app's limit of %d for a single upload", req.Filename, req.Size, app.MaxUploadBytes)
	}
	if err := s.takeUploadGrant(app, claims.Channel); err != nil {
		return err
	}
	req.App, req.Channel, req.MaxBytes, req.AllowedTypes = claims.App, claims.Channel, app.MaxUploadBytes, app.AllowedTypes
	g, err := s.cfg.Uploads.GrantUpload(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, g)
	return nil
}

func (s *Server) handleJobs(w http.ResponseWriter, r *http.Request) error {
	app, err := s.serviceApp(r)
	if err != nil {
		return err
	}
	var req job.Request
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Channel == "" || req.Bucket == "" || req.Key == "" {
		return apiError(CodeBadRequest, nil, `"channel", "bucket" and "key" are required`)
	}
	if other, ok := job.Owner(req.Key); ok && other != app.ID {
		return apiError(CodeForbidden, nil, "key %q belongs to app %q", req.Key, other)
	}
	if s.cfg.Jobs == nil {
		return apiError(CodeUnavailable, nil, "jobs are not configured on this gateway")
	}
	req.App = app.ID
	id, err := s.cfg.Jobs.SubmitJob(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"jobId": id})
	return nil
}

// bearerSession verifies r's Bearer session token and returns its claims
// and app (see browserApp).
func (s *Server) bearerSession(r *http.Request) (tenant.Claims, *tenant.App, error) {
	tok, ok := bearer(r)
	if !ok {
		return tenant.Claims{}, nil, apiError(CodeUnauthorized, nil, "Authorization: Bearer <session token> is required")
	}
	claims, err := s.verifyAnyApp(tok)
	if err != nil {
		return tenant.Claims{}, nil, err
	}
	app, err := s.browserApp(claims, r)
	return claims, app, err
}

// browserApp is the app of a browser's session, refusing a request from an
// origin the app does not allow.
func (s *Server) browserApp(claims tenant.Claims, r *http.Request) (*tenant.App, error) {
	app, err := s.cfg.Registry.App(claims.App)
	if err != nil {
		return nil, err
	}
	if err := allowOrigin(app, r); err != nil {
		return nil, err
	}
	return app, nil
}

// allowOrigin refuses a browser request from an origin app does not allow.
func allowOrigin(app *tenant.App, r *http.Request) error {
	if !app.AllowsOrigin(r.Header.Get("Origin")) {
		return apiError(CodeForbidden, nil, "origin %q is not allowed for app %q", r.Header.Get("Origin"), app.ID)
	}
	return nil
}

func (s *Server) verifyAnyApp(tok string) (tenant.Claims, error) {
	return s.cfg.Registry.VerifyAny(tok, s.now())
}

// handleJobStatus answers GET /v1/jobs/{jobId} for the app whose API key
// is presented. It is for services and support staff; browsers learn the
// same from the job's events and never call it.
func (s *Server) handleJobStatus(w http.ResponseWriter, r *http.Request) error {
	app, err := s.serviceApp(r)
	if err != nil {
		return err
	}
	if s.cfg.JobStatus == nil {
		return apiError(CodeUnavailable, nil, "jobs are not configured on this gateway")
	}
	st, err := s.cfg.JobStatus.JobStatus(r.Context(), app.ID, r.PathValue("jobId"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, st)
	return nil
}
