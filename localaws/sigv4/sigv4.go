// Package sigv4 verifies AWS Signature Version 4 requests the way AWS does:
// Authorization-header signatures, presigned query signatures, aws-chunked
// streaming payloads (signed chunks and unsigned chunks with trailing
// checksums) and browser POST policy signatures.
//
// It is the single authentication point of localaws: the router verifies a
// request here before handing it to the S3 or SQS service.
package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Algorithm is the only signing algorithm localaws accepts.
const Algorithm = "AWS4-HMAC-SHA256"

// Payload hash markers that replace the hex SHA-256 of the body in
// X-Amz-Content-Sha256.
const (
	UnsignedPayload                 = "UNSIGNED-PAYLOAD"
	StreamingSignedPayload          = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	StreamingSignedPayloadTrailer   = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	StreamingUnsignedPayloadTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
)

// TimeFormat is the ISO 8601 basic format of X-Amz-Date.
const TimeFormat = "20060102T150405Z"

// DateFormat is the date part of a credential scope.
const DateFormat = "20060102"

// Errors returned by verification; callers map them to their protocol's
// error codes with errors.Is.
var (
	ErrNotSigned             = errors.New("sigv4: request is not signed")
	ErrMalformed             = errors.New("sigv4: malformed authorization")
	ErrUnknownAccessKey      = errors.New("sigv4: unknown access key")
	ErrSignatureMismatch     = errors.New("sigv4: signature does not match")
	ErrExpired               = errors.New("sigv4: request has expired")
	ErrTimeSkewed            = errors.New("sigv4: request time too skewed")
	ErrContentSHA256Mismatch = errors.New("sigv4: x-amz-content-sha256 does not match the body")
	ErrChecksumMismatch      = errors.New("sigv4: checksum does not match the body")
	ErrIncompleteBody        = errors.New("sigv4: body shorter or longer than declared")
)

// Credential is the parsed "AKID/date/region/service/aws4_request" value.
type Credential struct {
	AccessKey string
	Date      string // YYYYMMDD
	Region    string
	Service   string
}

// Scope returns "date/region/service/aws4_request".
func (c Credential) Scope() string {
	return c.Date + "/" + c.Region + "/" + c.Service + "/aws4_request"
}

// String returns the credential as it appears on the wire.
func (c Credential) String() string { return c.AccessKey + "/" + c.Scope() }

// ParseCredential parses "AKID/20150830/us-east-1/service/aws4_request".
// The access key itself may not contain '/', as with AWS.
func ParseCredential(s string) (Credential, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 5 {
		return Credential{}, fmt.Errorf("credential %q: want 5 '/'-separated parts: %w", s, ErrMalformed)
	}
	c := Credential{AccessKey: parts[0], Date: parts[1], Region: parts[2], Service: parts[3]}
	if parts[4] != "aws4_request" {
		return Credential{}, fmt.Errorf("credential %q: terminator is not aws4_request: %w", s, ErrMalformed)
	}
	if c.AccessKey == "" || c.Region == "" || c.Service == "" {
		return Credential{}, fmt.Errorf("credential %q: empty part: %w", s, ErrMalformed)
	}
	if _, err := time.Parse(DateFormat, c.Date); err != nil {
		return Credential{}, fmt.Errorf("credential %q: bad date: %w", s, ErrMalformed)
	}
	return c, nil
}

// Authorization is a parsed Authorization header.
type Authorization struct {
	Credential    Credential
	SignedHeaders []string // lower case, in the order given (AWS requires sorted)
	Signature     string   // lower-case hex
}

// ParseAuthorization parses
// "AWS4-HMAC-SHA256 Credential=…, SignedHeaders=a;b, Signature=hex".
// Components may be separated by ',' with or without spaces, in any order.
func ParseAuthorization(h string) (Authorization, error) {
	var a Authorization
	rest, ok := strings.CutPrefix(h, Algorithm)
	if !ok || (rest != "" && rest[0] != ' ') {
		return a, fmt.Errorf("authorization %.40q: algorithm is not %s: %w", h, Algorithm, ErrMalformed)
	}
	var haveCred, haveHeaders, haveSig bool
	for _, field := range strings.Split(rest, ",") {
		field = strings.TrimSpace(field)
		name, val, ok := strings.Cut(field, "=")
		if !ok {
			return a, fmt.Errorf("authorization field %.40q: no '=': %w", field, ErrMalformed)
		}
		switch name {
		case "Credential":
			c, err := ParseCredential(val)
			if err != nil {
				return a, err
			}
			a.Credential, haveCred = c, true
		case "SignedHeaders":
			if val == "" {
				return a, fmt.Errorf("authorization: empty SignedHeaders: %w", ErrMalformed)
			}
			a.SignedHeaders, haveHeaders = strings.Split(val, ";"), true
		case "Signature":
			if !isLowerHex(val, 64) {
				return a, fmt.Errorf("authorization: signature is not 64 hex digits: %w", ErrMalformed)
			}
			a.Signature, haveSig = val, true
		default:
			return a, fmt.Errorf("authorization: unknown field %.40q: %w", name, ErrMalformed)
		}
	}
	if !haveCred || !haveHeaders || !haveSig {
		return a, fmt.Errorf("authorization: needs Credential, SignedHeaders and Signature: %w", ErrMalformed)
	}
	return a, nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// SigningKey derives the SigV4 signing key for one day, region and service.
func SigningKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	return hmacSHA256(k, []byte("aws4_request"))
}

// StringToSign builds the string to sign for a canonical request.
func StringToSign(amzDate string, c Credential, canonicalRequest string) string {
	return Algorithm + "\n" + amzDate + "\n" + c.Scope() + "\n" + hexSHA256([]byte(canonicalRequest))
}

// Sign returns the hex HMAC-SHA256 of s with key.
func Sign(key []byte, s string) string { return hex.EncodeToString(hmacSHA256(key, []byte(s))) }

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// EmptySHA256 is the hex SHA-256 of the empty string.
const EmptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

type resultKey struct{}

// WithResult returns a context carrying a verified request's Result; the
// router sets it so services can decode streaming bodies and name the
// caller.
func WithResult(ctx context.Context, res *Result) context.Context {
	return context.WithValue(ctx, resultKey{}, res)
}

// ResultFrom returns the Result set by WithResult, or nil.
func ResultFrom(ctx context.Context) *Result {
	res, _ := ctx.Value(resultKey{}).(*Result)
	return res
}
