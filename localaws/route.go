package localaws

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/heraldgw/herald/localaws/s3"
	"github.com/heraldgw/herald/localaws/sigv4"
)

// Service names a routing target.
type Service string

// Routing targets.
const (
	ServiceS3      Service = "s3"
	ServiceSQS     Service = "sqs"
	ServiceUnknown Service = ""
)

// Route decides which service a request is for, without verifying it: the
// SigV4 credential scope (Authorization header or presigned
// X-Amz-Credential) names the service; otherwise an X-Amz-Target of
// AmazonSQS.* or a url-encoded form POST (the SQS query protocol) means
// SQS, and everything else — CORS preflights, browser POST uploads, whose
// credential is inside the multipart form and checked by S3 against the
// policy, and anonymous requests — goes to S3.
func Route(r *http.Request) Service {
	if r.Method == http.MethodOptions {
		return ServiceS3
	}
	if c, ok := sigv4.ScopeOf(r); ok {
		switch c.Service {
		case "s3":
			return ServiceS3
		case "sqs":
			return ServiceSQS
		}
		return ServiceUnknown
	}
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.") {
		return ServiceSQS
	}
	if r.Method == http.MethodPost {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt == "application/x-www-form-urlencoded" || r.URL.Query().Has("Action") {
			return ServiceSQS
		}
	}
	return ServiceS3
}

func isBrowserPost(r *http.Request) bool {
	if r.Method != http.MethodPost || r.Header.Get("Authorization") != "" {
		return false
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}

// route authenticates and dispatches one request.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	switch Route(r) {
	case ServiceS3:
		if r.Method == http.MethodOptions || isBrowserPost(r) {
			s.s3.ServeHTTP(w, r) // preflight needs no auth; POST carries a signed policy
			return
		}
		res, err := s.verifier.Verify(r)
		if err != nil {
			s.s3.WriteAuthError(w, r, err)
			return
		}
		s.s3.ServeHTTP(w, r.WithContext(sigv4.WithResult(r.Context(), res)))
	case ServiceSQS:
		res, err := s.verifier.Verify(r)
		if err != nil {
			writeSQSAuthError(w, r, err)
			return
		}
		s.sqs.ServeHTTP(w, r.WithContext(sigv4.WithResult(r.Context(), res)))
	default:
		s.s3.WriteAuthError(w, r, &s3.Error{Code: "InvalidRequest", Status: http.StatusBadRequest, Message: "localaws serves only the s3 and sqs services"})
	}
}

// writeSQSAuthError answers an unauthenticated SQS request in the protocol
// the client speaks (JSON for X-Amz-Target callers, query XML otherwise).
func writeSQSAuthError(w http.ResponseWriter, r *http.Request, err error) {
	code, status, msg := "AccessDenied", http.StatusForbidden, "Access to the resource is denied."
	switch {
	case errors.Is(err, sigv4.ErrNotSigned):
		code, status, msg = "MissingAuthenticationToken", http.StatusForbidden, "Request is missing Authentication Token"
	case errors.Is(err, sigv4.ErrUnknownAccessKey):
		code, msg = "InvalidClientTokenId", "The security token included in the request is invalid."
	case errors.Is(err, sigv4.ErrSignatureMismatch):
		code, msg = "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
	case errors.Is(err, sigv4.ErrExpired), errors.Is(err, sigv4.ErrTimeSkewed):
		code, status, msg = "RequestExpired", http.StatusBadRequest, "Request has expired."
	case errors.Is(err, sigv4.ErrMalformed):
		code, status, msg = "IncompleteSignature", http.StatusBadRequest, "The request signature does not conform to AWS standards."
	}
	if r.Header.Get("X-Amz-Target") != "" {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("x-amzn-query-error", code+";Sender")
		w.WriteHeader(status)
		b, _ := json.Marshal(struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}{"com.amazon.coral.service#" + code, msg})
		_, _ = w.Write(b)
		return
	}
	type sqsError struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Error     sqsError `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}{Error: sqsError{"Sender", code, msg}, RequestID: "00000000-0000-0000-0000-000000000000"})
}
