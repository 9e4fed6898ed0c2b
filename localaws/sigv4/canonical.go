package sigv4

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// URIEncode escapes s with the SigV4 rules: every byte except the unreserved
// characters A-Z a-z 0-9 - _ . ~ becomes %XX (upper-case hex); '/' is kept
// when keepSlash is true.
func URIEncode(s string, keepSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/' && keepSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// rawPath returns the path exactly as the client sent it.
func rawPath(r *http.Request) string {
	p := r.RequestURI
	if p == "" || p == "*" || !strings.HasPrefix(p, "/") {
		p = r.URL.EscapedPath()
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p == "" {
		p = "/"
	}
	return p
}

// canonicalURIs returns the candidate canonical URIs for a request. S3
// signs the path as sent (single encoding); other services encode the
// already-encoded path a second time. A second candidate re-encodes the
// decoded path with the SigV4 rules, covering clients that send characters
// such as '!' raw but sign them escaped.
func canonicalURIs(r *http.Request, service string) []string {
	sent := rawPath(r)
	var out []string
	if service == "s3" {
		out = append(out, sent)
		if dec, err := url.PathUnescape(sent); err == nil {
			if alt := URIEncode(dec, true); alt != sent {
				out = append(out, alt)
			}
		}
		return out
	}
	return append(out, URIEncode(sent, true))
}

// canonicalQuery encodes and sorts the query parameters, leaving out
// X-Amz-Signature (the presigned signature itself).
func canonicalQuery(rawQuery string) string {
	type kv struct{ k, v string }
	var params []kv
	for _, part := range strings.Split(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			dk = k
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			dv = v
		}
		if dk == "X-Amz-Signature" {
			continue
		}
		params = append(params, kv{URIEncode(dk, false), URIEncode(dv, false)})
	}
	sort.Slice(params, func(i, j int) bool {
		if params[i].k != params[j].k {
			return params[i].k < params[j].k
		}
		return params[i].v < params[j].v
	})
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// headerValue returns the canonical value of one signed header.
func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		if v := r.Header.Get("Content-Length"); v != "" {
			return v
		}
		if r.ContentLength >= 0 {
			return strconv.FormatInt(r.ContentLength, 10)
		}
	case "transfer-encoding":
		return strings.Join(r.TransferEncoding, ",")
	}
	vals := r.Header.Values(name)
	for i, v := range vals {
		vals[i] = collapseSpaces(v)
	}
	return strings.Join(vals, ",")
}

func collapseSpaces(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "  ") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// CanonicalRequest builds the canonical request for r with the given
// canonical URI, signed headers and payload hash.
func CanonicalRequest(r *http.Request, uri string, signedHeaders []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(uri)
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery))
	b.WriteByte('\n')
	for _, h := range signedHeaders {
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(headerValue(r, h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}
