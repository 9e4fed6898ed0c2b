package sigv4

import (
	"bytes"
	"crypto/hmac"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Config configures a Verifier.
type Config struct {
	// Credentials maps access key id to secret access key. Required.
	Credentials map[string]string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MaxSkew is how far X-Amz-Date of a header-signed request may be from
	// Now; default 15 minutes, as AWS.
	MaxSkew time.Duration
	// MaxUnsignedBody bounds how much of a body is buffered to hash it when a
	// non-S3 client signs the payload without X-Amz-Content-Sha256 (SQS);
	// default 2 MiB.
	MaxUnsignedBody int64
	// Region, when set, is the only region a credential scope may name, as
	// on AWS: a client configured for another region fails here the way it
	// would fail against the real endpoint.
	Region string
}

// Verifier checks SigV4 signatures against a fixed set of key pairs.
type Verifier struct {
	region  string
	creds   map[string]string
	now     func() time.Time
	maxSkew time.Duration
	maxBody int64
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg Config) *Verifier {
	v := &Verifier{region: cfg.Region, creds: make(map[string]string, len(cfg.Credentials)), now: cfg.Now, maxSkew: cfg.MaxSkew, maxBody: cfg.MaxUnsignedBody}
	for k, s := range cfg.Credentials {
		v.creds[k] = s
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.maxSkew == 0 {
		v.maxSkew = 15 * time.Minute
	}
	if v.maxBody == 0 {
		v.maxBody = 2 << 20
	}
	return v
}

// Now returns the verifier's clock reading.
func (v *Verifier) Now() time.Time { return v.now() }

// SigningKey returns the signing key for a credential, or
// ErrUnknownAccessKey, or ErrMalformed for a scope naming another region.
func (v *Verifier) SigningKey(c Credential) ([]byte, error) {
	secret, ok := v.creds[c.AccessKey]
	if !ok {
		return nil, fmt.Errorf("access key %q: %w", c.AccessKey, ErrUnknownAccessKey)
	}
	if v.region != "" && c.Region != v.region {
		return nil, fmt.Errorf("the region %q is wrong; expecting %q: %w", c.Region, v.region, ErrMalformed)
	}
	return SigningKey(secret, c.Date, c.Region, c.Service), nil
}

// Result describes a verified request.
type Result struct {
	Credential  Credential
	AmzDate     string    // X-Amz-Date as sent
	Time        time.Time // parsed AmzDate
	Signature   string    // the request (seed) signature
	PayloadHash string    // X-Amz-Content-Sha256 value or UNSIGNED-PAYLOAD
	Presigned   bool
	signingKey  []byte
}

// SigningKey returns the key the request was signed with; streaming chunk
// signatures chain from it.
func (r *Result) SigningKey() []byte { return r.signingKey }

// ScopeOf returns the credential scope a request claims, without verifying
// anything: from the Authorization header, or the X-Amz-Credential query
// parameter of a presigned URL. ok is false for unsigned requests.
func ScopeOf(r *http.Request) (Credential, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		a, err := ParseAuthorization(h)
		if err != nil {
			return Credential{}, false
		}
		return a.Credential, true
	}
	if q := r.URL.Query().Get("X-Amz-Credential"); q != "" {
		c, err := ParseCredential(q)
		return c, err == nil
	}
	return Credential{}, false
}

// Verify checks the request's header or query signature. On success the
// body is untouched except for non-S3 requests without
// X-Amz-Content-Sha256, whose (bounded) body is read to hash it and then
// replaced by an equal in-memory body.
func (v *Verifier) Verify(r *http.Request) (*Result, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		return v.verifyHeader(r, h)
	}
	if r.URL.Query().Has("X-Amz-Credential") || r.URL.Query().Has("X-Amz-Signature") {
		return v.verifyQuery(r)
	}
	return nil, ErrNotSigned
}

func (v *Verifier) verifyHeader(r *http.Request, h string) (*Result, error) {
	a, err := ParseAuthorization(h)
	if err != nil {
		return nil, err
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return nil, fmt.Errorf("header-signed request without X-Amz-Date: %w", ErrMalformed)
	}
	t, err := v.checkDate(amzDate, a.Credential)
	if err != nil {
		return nil, err
	}
	if d := v.now().Sub(t); d > v.maxSkew || d < -v.maxSkew {
		return nil, fmt.Errorf("X-Amz-Date %s is %s from now: %w", amzDate, d.Round(time.Second), ErrTimeSkewed)
	}
	if !hasHeader(a.SignedHeaders, "host") {
		return nil, fmt.Errorf("SignedHeaders %v lacks host: %w", a.SignedHeaders, ErrMalformed)
	}
	if h := unsignedAmzHeader(r, a.SignedHeaders); h != "" {
		return nil, fmt.Errorf("header %s is not signed: %w", h, ErrSignatureMismatch)
	}
	key, err := v.SigningKey(a.Credential)
	if err != nil {
		return nil, err
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if a.Credential.Service == "s3" {
		if payload == "" {
			return nil, fmt.Errorf("s3 request without X-Amz-Content-Sha256: %w", ErrMalformed)
		}
	} else if payload, err = v.bodyHash(r, payload); err != nil {
		return nil, err
	}
	res := &Result{Credential: a.Credential, AmzDate: amzDate, Time: t, Signature: a.Signature, PayloadHash: payload, signingKey: key}
	if !v.matches(r, res, a.SignedHeaders) {
		return nil, fmt.Errorf("%s %s: %w", r.Method, rawPath(r), ErrSignatureMismatch)
	}
	return res, nil
}

func (v *Verifier) verifyQuery(r *http.Request) (*Result, error) {
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") != Algorithm {
		return nil, fmt.Errorf("X-Amz-Algorithm %q: %w", q.Get("X-Amz-Algorithm"), ErrMalformed)
	}
	c, err := ParseCredential(q.Get("X-Amz-Credential"))
	if err != nil {
		return nil, err
	}
	amzDate := q.Get("X-Amz-Date")
	t, err := v.checkDate(amzDate, c)
	if err != nil {
		return nil, err
	}
	expires, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	if err != nil || expires < 1 || expires > 604800 {
		return nil, fmt.Errorf("X-Amz-Expires %q: want 1..604800: %w", q.Get("X-Amz-Expires"), ErrMalformed)
	}
	now := v.now()
	if now.After(t.Add(time.Duration(expires) * time.Second)) {
		return nil, fmt.Errorf("presigned at %s for %ds: %w", amzDate, expires, ErrExpired)
	}
	if t.Sub(now) > v.maxSkew {
		return nil, fmt.Errorf("X-Amz-Date %s is in the future: %w", amzDate, ErrTimeSkewed)
	}
	sig := q.Get("X-Amz-Signature")
	if !isLowerHex(sig, 64) {
		return nil, fmt.Errorf("X-Amz-Signature is not 64 hex digits: %w", ErrMalformed)
	}
	signed := strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	if !hasHeader(signed, "host") {
		return nil, fmt.Errorf("X-Amz-SignedHeaders %v lacks host: %w", signed, ErrMalformed)
	}
	if h := unsignedAmzHeader(r, signed); h != "" {
		return nil, fmt.Errorf("presigned request header %s is not signed: %w", h, ErrSignatureMismatch)
	}
	key, err := v.SigningKey(c)
	if err != nil {
		return nil, err
	}
	payload := q.Get("X-Amz-Content-Sha256")
	if c.Service != "s3" {
		if payload, err = v.bodyHash(r, payload); err != nil {
			return nil, err
		}
	} else if payload == "" {
		payload = UnsignedPayload
	}
	res := &Result{Credential: c, AmzDate: amzDate, Time: t, Signature: sig, PayloadHash: payload, Presigned: true, signingKey: key}
	if !v.matches(r, res, signed) {
		return nil, fmt.Errorf("presigned %s %s: %w", r.Method, rawPath(r), ErrSignatureMismatch)
	}
	return res, nil
}

func (v *Verifier) matches(r *http.Request, res *Result, signed []string) bool {
	want := []byte(res.Signature)
	for _, uri := range canonicalURIs(r, res.Credential.Service) {
		cr := CanonicalRequest(r, uri, signed, res.PayloadHash)
		got := Sign(res.signingKey, StringToSign(res.AmzDate, res.Credential, cr))
		if hmac.Equal([]byte(got), want) {
			return true
		}
	}
	return false
}

func (v *Verifier) checkDate(amzDate string, c Credential) (time.Time, error) {
	t, err := time.Parse(TimeFormat, amzDate)
	if err != nil {
		return t, fmt.Errorf("X-Amz-Date %q: %w", amzDate, ErrMalformed)
	}
	if t.Format(DateFormat) != c.Date {
		return t, fmt.Errorf("X-Amz-Date %s outside credential date %s: %w", amzDate, c.Date, ErrMalformed)
	}
	return t, nil
}

// bodyHash returns the payload hash of a non-S3 request: the hash of its
// (bounded) body. Only S3 verifies the body against a declared
// X-Amz-Content-Sha256 as it streams; other services read the body
// directly, so a declared hash must match it here, or the signature would
// not cover the body at all.
func (v *Verifier) bodyHash(r *http.Request, declared string) (string, error) {
	sum, err := v.hashBody(r)
	if err != nil {
		return "", err
	}
	if declared != "" && declared != sum {
		return "", fmt.Errorf("body does not hash to the declared X-Amz-Content-Sha256 %.64q: %w", declared, ErrSignatureMismatch)
	}
	return sum, nil
}

func (v *Verifier) hashBody(r *http.Request) (string, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return EmptySHA256, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, v.maxBody+1))
	if err != nil {
		return "", fmt.Errorf("read body to hash it: %w", err)
	}
	if int64(len(b)) > v.maxBody {
		return "", fmt.Errorf("body over %d bytes without X-Amz-Content-Sha256: %w", v.maxBody, ErrMalformed)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return hexSHA256(b), nil
}

// unsignedAmzHeader returns the first x-amz-* request header that is not
// among the signed headers, or "". As on AWS, such headers are refused:
// they change what a request does (x-amz-copy-source turns a presigned PUT
// into a copy of any object, x-amz-meta-* sets metadata), so whoever holds a
// presigned URL must not be able to add them.
func unsignedAmzHeader(r *http.Request, signed []string) string {
	for name := range r.Header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-amz-") && !hasHeader(signed, lower) {
			return lower
		}
	}
	return ""
}

func hasHeader(list []string, name string) bool {
	for _, h := range list {
		if h == name {
			return true
		}
	}
	return false
}
