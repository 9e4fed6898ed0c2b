// Package iotcore connects browsers to AWS IoT Core: a WebSocket URL
// presigned with SigV4 (service "iotdevicegateway") using temporary
// credentials from STS AssumeRole, whose inline session policy allows
// exactly one channel — connect as client {channel}, subscribe to and
// receive apps/{app}/channels/{channel}/*.
package iotcore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Credentials are AWS credentials; SessionToken is set for temporary ones.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// Request is what Presign signs: a GET (or other method) of
// {Scheme}://{Host}{Path}?{Query} with only the host header signed.
type Request struct {
	Method, Scheme, Host, Path string
	Query                      url.Values
	Service, Region            string
	Time                       time.Time
	// Expires becomes X-Amz-Expires; zero leaves it out.
	Expires time.Duration
	// PayloadHash is the hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
	// (S3); empty means the hash of an empty body.
	PayloadHash string
	// TokenAfterSigning appends X-Amz-Security-Token after the signature
	// instead of signing it, as AWS IoT Core's WebSocket endpoint requires.
	TokenAfterSigning bool
}

// ErrPresign is returned (wrapped) for a request that cannot be signed.
var ErrPresign = errors.New("iotcore: cannot presign")

const algorithm = "AWS4-HMAC-SHA256"

// emptyHash is the SHA-256 of an empty body.
const emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Presign returns the request's URL carrying a SigV4 query signature.
func Presign(r Request, c Credentials) (string, error) {
	if r.Host == "" || r.Service == "" || r.Region == "" || c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return "", fmt.Errorf("host, service, region and credentials are required: %w", ErrPresign)
	}
	method := r.Method
	if method == "" {
		method = "GET"
	}
	path := r.Path
	if path == "" {
		path = "/"
	}
	hash := r.PayloadHash
	if hash == "" {
		hash = emptyHash
	}
	t := r.Time.UTC()
	amzDate, day := t.Format("20060102T150405Z"), t.Format("20060102")
	scope := day + "/" + r.Region + "/" + r.Service + "/aws4_request"

	q := url.Values{}
	for k, v := range r.Query {
		q[k] = append([]string(nil), v...)
	}
	q.Set("X-Amz-Algorithm", algorithm)
	q.Set("X-Amz-Credential", c.AccessKeyID+"/"+scope)
	q.Set("X-Amz-Date", amzDate)
	if r.Expires > 0 {
		q.Set("X-Amz-Expires", strconv.Itoa(int(r.Expires/time.Second)))
	}
	q.Set("X-Amz-SignedHeaders", "host")
	if c.SessionToken != "" && !r.TokenAfterSigning {
		q.Set("X-Amz-Security-Token", c.SessionToken)
	}
	cq := canonicalQuery(q)
	canonical := strings.Join([]string{method, uriEncode(path, true), cq, "host:" + strings.ToLower(r.Host) + "\n", "host", hash}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	toSign := algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := signingKey(c.SecretAccessKey, day, r.Region, r.Service)
	sig := hex.EncodeToString(hmacSHA256(key, []byte(toSign)))

	scheme := r.Scheme
	if scheme == "" {
		scheme = "https"
	}
	u := scheme + "://" + r.Host + uriEncode(path, true) + "?" + cq + "&X-Amz-Signature=" + sig
	if c.SessionToken != "" && r.TokenAfterSigning {
		u += "&X-Amz-Security-Token=" + uriEncode(c.SessionToken, false)
	}
	return u, nil
}

func signingKey(secret, day, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(day))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	return hmacSHA256(k, []byte("aws4_request"))
}

func hmacSHA256(key, data []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(data)
	return h.Sum(nil)
}

// canonicalQuery sorts by key (then value) and encodes both per SigV4.
func canonicalQuery(q url.Values) string {
	type kv struct{ k, v string }
	var all []kv
	for k, vs := range q {
		for _, v := range vs {
			all = append(all, kv{uriEncode(k, false), uriEncode(v, false)})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].k != all[j].k {
			return all[i].k < all[j].k
		}
		return all[i].v < all[j].v
	})
	parts := make([]string, len(all))
	for i, p := range all {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// uriEncode percent-encodes everything but RFC 3986 unreserved characters
// (and '/' when keepSlash), uppercase hex, as SigV4 specifies.
func uriEncode(s string, keepSlash bool) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case c == '/' && keepSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexd[c>>4])
			b.WriteByte(hexd[c&15])
		}
	}
	return b.String()
}
