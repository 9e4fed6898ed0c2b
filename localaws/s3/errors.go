package s3

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"

	"github.com/heraldgw/herald/localaws/sigv4"
)

// Error is an S3 API error: a code and HTTP status from S3's error table,
// a message, and the resource it concerns. It wraps the cause when there is
// one, so callers compare with errors.Is/As.
type Error struct {
	Code    string
	Status  int
	Message string
	Bucket  string
	Key     string
	Cause   error
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Bucket != "" {
		s += " (bucket " + e.Bucket
		if e.Key != "" {
			s += fmt.Sprintf(", key %q", e.Key)
		}
		s += ")"
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is matches another *Error by code, so errors.Is(err, ErrNoSuchKey) works
// whatever the bucket, key or message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func s3err(code string, status int, msg string) *Error {
	return &Error{Code: code, Status: status, Message: msg}
}

// Sentinel errors, one per S3 error code localaws returns.
var (
	ErrAccessDenied          = s3err("AccessDenied", 403, "Access Denied")
	ErrSignatureDoesNotMatch = s3err("SignatureDoesNotMatch", 403, "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
	ErrInvalidAccessKeyID    = s3err("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records.")
	ErrRequestTimeTooSkewed  = s3err("RequestTimeTooSkewed", 403, "The difference between the request time and the current time is too large.")
	ErrAuthHeaderMalformed   = s3err("AuthorizationHeaderMalformed", 400, "The authorization header is malformed.")
	ErrContentSHA256Mismatch = s3err("XAmzContentSHA256Mismatch", 400, "The provided 'x-amz-content-sha256' header does not match what was computed.")
	ErrBadDigest             = s3err("BadDigest", 400, "The Content-MD5 or checksum you specified did not match what we received.")
	ErrIncompleteBody        = s3err("IncompleteBody", 400, "You did not provide the number of bytes specified by the Content-Length HTTP header.")
	ErrEntityTooLarge        = s3err("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size.")
	ErrEntityTooSmall        = s3err("EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size.")
	ErrInvalidPolicyDocument = s3err("InvalidPolicyDocument", 400, "The content of the form does not meet the conditions specified in the policy document.")
	ErrNoSuchKey             = s3err("NoSuchKey", 404, "The specified key does not exist.")
	ErrNoSuchBucket          = s3err("NoSuchBucket", 404, "The specified bucket does not exist.")
	ErrNoSuchUpload          = s3err("NoSuchUpload", 404, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")
	ErrInvalidPart           = s3err("InvalidPart", 400, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.")
	ErrInvalidPartOrder      = s3err("InvalidPartOrder", 400, "The list of parts was not in ascending order. Parts must be ordered by part number.")
	ErrPreconditionFailed    = s3err("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold")
	ErrInvalidRange          = s3err("InvalidRange", 416, "The requested range is not satisfiable")
	ErrBucketNotEmpty        = s3err("BucketNotEmpty", 409, "The bucket you tried to delete is not empty")
	ErrBucketAlreadyOwned    = s3err("BucketAlreadyOwnedByYou", 409, "Your previous request to create the named bucket succeeded and you already own it.")
	ErrInvalidBucketName     = s3err("InvalidBucketName", 400, "The specified bucket is not valid.")
	ErrKeyTooLong            = s3err("KeyTooLongError", 400, "Your key is too long")
	ErrMalformedXML          = s3err("MalformedXML", 400, "The XML you provided was not well-formed or did not validate against our published schema")
	ErrInvalidArgument       = s3err("InvalidArgument", 400, "Invalid Argument")
	ErrInvalidRequest        = s3err("InvalidRequest", 400, "Invalid Request")
	ErrMethodNotAllowed      = s3err("MethodNotAllowed", 405, "The specified method is not allowed against this resource.")
	ErrNotImplemented        = s3err("NotImplemented", 501, "A header or query you provided implies functionality that is not implemented.")
	ErrNoSuchCORS            = s3err("NoSuchCORSConfiguration", 404, "The CORS configuration does not exist")
	ErrCORSForbidden         = s3err("AccessForbidden", 403, "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.")
	ErrMissingContentLength  = s3err("MissingContentLength", 411, "You must provide the Content-Length HTTP header.")
	ErrInternal              = s3err("InternalError", 500, "We encountered an internal error. Please try again.")
)

// with returns a copy of e naming a resource, with an optional cause and
// message override.
func (e *Error) with(bucket, key string, cause error, msg string) *Error {
	c := *e
	c.Bucket, c.Key, c.Cause = bucket, key, cause
	if msg != "" {
		c.Message = msg
	}
	return &c
}

// FromAuthError maps a sigv4 verification or body-decoding error to S3's
// error code.
func FromAuthError(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, sigv4.ErrNotSigned):
		return ErrAccessDenied.with("", "", err, "")
	case errors.Is(err, sigv4.ErrUnknownAccessKey):
		return ErrInvalidAccessKeyID.with("", "", err, "")
	case errors.Is(err, sigv4.ErrSignatureMismatch):
		return ErrSignatureDoesNotMatch.with("", "", err, "")
	case errors.Is(err, sigv4.ErrExpired):
		return ErrAccessDenied.with("", "", err, "Request has expired")
	case errors.Is(err, sigv4.ErrTimeSkewed):
		return ErrRequestTimeTooSkewed.with("", "", err, "")
	case errors.Is(err, sigv4.ErrMalformed):
		return ErrAuthHeaderMalformed.with("", "", err, "")
	case errors.Is(err, sigv4.ErrContentSHA256Mismatch):
		return ErrContentSHA256Mismatch.with("", "", err, "")
	case errors.Is(err, sigv4.ErrChecksumMismatch):
		return ErrBadDigest.with("", "", err, "")
	case errors.Is(err, sigv4.ErrIncompleteBody):
		return ErrIncompleteBody.with("", "", err, "")
	}
	return ErrInternal.with("", "", err, "")
}

type errorXML struct {
	XMLName    xml.Name `xml:"Error"`
	Code       string   `xml:"Code"`
	Message    string   `xml:"Message"`
	BucketName string   `xml:"BucketName,omitempty"`
	Key        string   `xml:"Key,omitempty"`
	Resource   string   `xml:"Resource,omitempty"`
	RequestID  string   `xml:"RequestId"`
	HostID     string   `xml:"HostId"`
}

// writeError writes err as S3's XML error document (no body for HEAD).
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := FromAuthError(err)
	if e.Status >= 500 {
		s.log.Error("s3 request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		s.log.Debug("s3 request refused", "method", r.Method, "path", r.URL.Path, "code", e.Code, "err", err)
	}
	ids := requestIDs(r)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(e.Status)
	if r.Method == http.MethodHead {
		return
	}
	body := errorXML{Code: e.Code, Message: e.Message, BucketName: e.Bucket, Key: e.Key, Resource: r.URL.Path, RequestID: ids.requestID, HostID: ids.hostID}
	writeXMLBody(w, body)
}

func writeXMLBody(w http.ResponseWriter, v any) {
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(v)
}

// writeXML writes a 200 response with an XML document.
func writeXML(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	writeXMLBody(w, v)
}
