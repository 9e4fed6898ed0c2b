package s3

import (
	"net/http"
	"strconv"
	"strings"
)

var corsMethods = map[string]bool{"GET": true, "PUT": true, "HEAD": true, "POST": true, "DELETE": true}

func validateCORS(c *CORSConfiguration) error {
	if len(c.Rules) == 0 || len(c.Rules) > 100 {
		return ErrMalformedXML
	}
	for _, rule := range c.Rules {
		if len(rule.AllowedMethods) == 0 || len(rule.AllowedOrigins) == 0 {
			return ErrMalformedXML
		}
		for _, m := range rule.AllowedMethods {
			if !corsMethods[m] {
				return ErrInvalidRequest.with("", "", nil, "Found unsupported HTTP method in CORS config. Unsupported method is "+m)
			}
		}
		for _, o := range rule.AllowedOrigins {
			if strings.Count(o, "*") > 1 {
				return ErrInvalidRequest.with("", "", nil, "AllowedOrigin \""+o+"\" can not have more than one wildcard.")
			}
		}
	}
	return nil
}

// PutBucketCORS replaces a bucket's CORS configuration.
func (s *Service) PutBucketCORS(bucket string, c CORSConfiguration) error {
	if err := validateCORS(&c); err != nil {
		return errFor(err, bucket, "")
	}
	return s.store.updateBucket(bucket, func(m *bucketMeta) error { m.CORS = &c; return nil })
}

func (s *Service) bucketCORS(w http.ResponseWriter, r *http.Request, bucket string) {
	switch r.Method {
	case http.MethodGet:
		m, err := s.store.getBucket(bucket)
		if err != nil {
			s.writeError(w, r, errFor(err, bucket, ""))
			return
		}
		if m.CORS == nil {
			s.writeError(w, r, ErrNoSuchCORS.with(bucket, "", nil, ""))
			return
		}
		writeXML(w, http.StatusOK, struct {
			CORSConfiguration
			Xmlns string `xml:"xmlns,attr"`
		}{*m.CORS, xmlns})
	case http.MethodPut:
		var c CORSConfiguration
		if err := readXML(r, &c); err != nil {
			s.writeError(w, r, errFor(err, bucket, ""))
			return
		}
		if err := s.PutBucketCORS(bucket, c); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodDelete:
		err := s.store.updateBucket(bucket, func(m *bucketMeta) error { m.CORS = nil; return nil })
		if err != nil {
			s.writeError(w, r, errFor(err, bucket, ""))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		s.writeError(w, r, ErrMethodNotAllowed)
	}
}

// wildcardMatch matches s against a pattern with at most one '*'.
func wildcardMatch(pattern, s string) bool {
	before, after, found := strings.Cut(pattern, "*")
	if !found {
		return pattern == s
	}
	return len(s) >= len(before)+len(after) && strings.HasPrefix(s, before) && strings.HasSuffix(s, after)
}

// matchRule finds the first rule allowing origin, method and headers.
func matchRule(c *CORSConfiguration, origin, method string, headers []string) (*CORSRule, string) {
	for i := range c.Rules {
		rule := &c.Rules[i]
		allowedOrigin := ""
		for _, o := range rule.AllowedOrigins {
			if wildcardMatch(o, origin) {
				allowedOrigin = origin
				if o == "*" {
					allowedOrigin = "*"
				}
				break
			}
		}
		if allowedOrigin == "" {
			continue
		}
		methodOK := false
		for _, m := range rule.AllowedMethods {
			methodOK = methodOK || m == method
		}
		if !methodOK {
			continue
		}
		headersOK := true
		for _, h := range headers {
			ok := false
			for _, ah := range rule.AllowedHeaders {
				ok = ok || wildcardMatch(strings.ToLower(ah), strings.ToLower(h))
			}
			headersOK = headersOK && ok
		}
		if headersOK {
			return rule, allowedOrigin
		}
	}
	return nil, ""
}

func setCORSHeaders(h http.Header, rule *CORSRule, allowOrigin string) {
	h.Set("Access-Control-Allow-Origin", allowOrigin)
	h.Set("Access-Control-Allow-Methods", strings.Join(rule.AllowedMethods, ", "))
	if allowOrigin != "*" {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if len(rule.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(rule.ExposeHeaders, ", "))
	}
	if rule.MaxAgeSeconds != nil {
		h.Set("Access-Control-Max-Age", strconv.Itoa(*rule.MaxAgeSeconds))
	}
	h.Add("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method")
}

// applyCORS adds CORS headers to an actual (non-preflight) request's
// response when the bucket's rules allow its Origin and method.
func (s *Service) applyCORS(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	bucket, _ := splitPath(r.URL.Path)
	if origin == "" || bucket == "" {
		return
	}
	m, err := s.store.getBucket(bucket)
	if err != nil || m.CORS == nil {
		return
	}
	if rule, allow := matchRule(m.CORS, origin, r.Method, nil); rule != nil {
		setCORSHeaders(w.Header(), rule, allow)
	}
}

// preflight answers a CORS preflight OPTIONS request.
func (s *Service) preflight(w http.ResponseWriter, r *http.Request, bucket string) {
	origin := r.Header.Get("Origin")
	method := r.Header.Get("Access-Control-Request-Method")
	if origin == "" || method == "" {
		s.writeError(w, r, ErrInvalidRequest.with(bucket, "", nil, "Insufficient information. Origin request header needed."))
		return
	}
	m, err := s.store.getBucket(bucket)
	if err != nil {
		s.writeError(w, r, ErrCORSForbidden.with(bucket, "", err, "CORSResponse: Bucket not found"))
		return
	}
	if m.CORS == nil {
		s.writeError(w, r, ErrCORSForbidden.with(bucket, "", nil, "CORSResponse: CORS is not enabled for this bucket."))
		return
	}
	var headers []string
	for _, h := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			headers = append(headers, strings.ToLower(h))
		}
	}
	rule, allow := matchRule(m.CORS, origin, method, headers)
	if rule == nil {
		s.writeError(w, r, ErrCORSForbidden.with(bucket, "", nil, ""))
		return
	}
	setCORSHeaders(w.Header(), rule, allow)
	if len(headers) > 0 {
		w.Header().Set("Access-Control-Allow-Headers", strings.Join(headers, ", "))
	}
	w.WriteHeader(http.StatusOK)
}
