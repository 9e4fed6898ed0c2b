package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/tenant"
)

// Code is a machine-readable error code of the HTTP API. It is the one set of
// codes the API speaks; statusOf maps each to its HTTP status.
type Code string

// The API's error codes.
const (
	CodeBadRequest       Code = "bad_request"
	CodeInvalidEvent     Code = "invalid_event"
	CodeUnauthorized     Code = "unauthorized"
	CodeTokenExpired     Code = "token_expired"
	CodeTokenRevoked     Code = "token_revoked"
	CodeForbidden        Code = "forbidden"
	CodeNotFound         Code = "not_found"
	CodeMethodNotAllowed Code = "method_not_allowed"
	CodeRequestTimeout   Code = "request_timeout"
	CodeTooLarge         Code = "too_large"
	CodeUnsupportedMedia Code = "unsupported_media_type"
	CodeUnsupportedType  Code = "unsupported_format"
	CodeRateLimited      Code = "rate_limited"
	CodeQuotaExceeded    Code = "quota_exceeded"
	CodeUnavailable      Code = "unavailable"
	CodeInternal         Code = "internal"
)

// statusOf is the single place where an error code becomes an HTTP status.
func statusOf(c Code) int {
	switch c {
	case CodeBadRequest, CodeInvalidEvent:
		return http.StatusBadRequest
	case CodeUnauthorized, CodeTokenExpired, CodeTokenRevoked:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeRequestTimeout:
		return http.StatusRequestTimeout
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnsupportedMedia, CodeUnsupportedType:
		return http.StatusUnsupportedMediaType
	case CodeRateLimited, CodeQuotaExceeded:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Error is an API error: a code, a message safe to show the caller, and the
// underlying cause for logs.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// apiError builds an *Error.
func apiError(code Code, err error, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...), Err: err}
}

// classify turns any error from the packages web calls into an *Error, so
// handlers can return errors as they come.
func classify(err error) *Error {
	var ae *Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, tenant.ErrExpired):
		return apiError(CodeTokenExpired, err, "session token expired; create a new session")
	case errors.Is(err, tenant.ErrRevoked):
		return apiError(CodeTokenRevoked, err, "this session was revoked; it cannot be used or refreshed")
	case errors.Is(err, tenant.ErrBadToken):
		return apiError(CodeUnauthorized, err, "invalid session token")
	case errors.Is(err, tenant.ErrBadAPIKey), errors.Is(err, tenant.ErrUnknownApp):
		return apiError(CodeUnauthorized, err, "invalid app or api key")
	case errors.Is(err, tenant.ErrQuota):
		return apiError(CodeQuotaExceeded, err, "%s; retry later", quotaMessage(err))
	case errors.Is(err, tenant.ErrAnonymous):
		return apiError(CodeUnauthorized, err, "this app needs its api key to create sessions")
	case errors.As(err, &mbe):
		return apiError(CodeTooLarge, err, "request body exceeds %d bytes", mbe.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return apiError(CodeRequestTimeout, err, "the request body did not arrive in time")
	case errors.Is(err, event.ErrInvalid):
		return apiError(CodeInvalidEvent, err, "%v", err)
	case errors.Is(err, job.ErrUnsupportedFormat):
		return apiError(CodeUnsupportedType, err, "this file type is not converted here")
	case errors.Is(err, job.ErrTooLarge):
		return apiError(CodeTooLarge, err, "%v", err)
	case errors.Is(err, job.ErrInvalid):
		return apiError(CodeBadRequest, err, "%v", err)
	case errors.Is(err, job.ErrNotFound), errors.Is(err, job.ErrNoJob):
		return apiError(CodeNotFound, err, "%v", err)
	case errors.Is(err, job.ErrForbidden):
		return apiError(CodeForbidden, err, "%v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return apiError(CodeUnavailable, err, "the gateway could not finish in time")
	default:
		return apiError(CodeInternal, err, "internal error")
	}
}

// quotaMessage says which of the caller's own app's limits was reached.
func quotaMessage(err error) string {
	var qe *tenant.QuotaError
	if !errors.As(err, &qe) {
		return "this app is at one of its limits"
	}
	return fmt.Sprintf("app %q is at its %s (%d)", qe.App, qe.Limit, qe.Max)
}

// errorBody is the JSON shape of docs/design.md: {"error":{"code","message"}}.
type errorBody struct {
	Error struct {
		Code    Code   `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := classify(err)
	status := statusOf(ae.Code)
	level := s.log.Info
	if status >= 500 {
		level = s.log.Error
	}
	level("request failed", "method", r.Method, "path", logPath(r), "status", status, "code", ae.Code, "err", err)
	s.metrics.apiErrors.WithLabelValues(string(ae.Code)).Inc()
	var qe *tenant.QuotaError
	if errors.As(err, &qe) {
		s.metrics.limited.WithLabelValues(qe.App, qe.Limit).Inc()
	}
	// A cause that knows when to come back (storage that cannot write)
	// says so.
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(time.Second, ra.RetryAfter()).Seconds()))))
	}
	var body errorBody
	body.Error.Code, body.Error.Message = ae.Code, ae.Message
	writeJSON(w, status, body)
}

// logPath is the request's path for logs, an upload token in it replaced:
// the token is a credential.
func logPath(r *http.Request) string {
	if tok := r.PathValue("token"); tok != "" {
		return strings.Replace(r.URL.Path, tok, "{token}", 1)
	}
	return r.URL.Path
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
