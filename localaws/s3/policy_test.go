package s3

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestPostPolicyCheck(t *testing.T) {
	now := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	doc := b64(`{"expiration":"2026-11-23T18:15:00Z","conditions":[{"bucket":"herald"},["starts-with","$key","uploads/demo/"],` +
		`["content-length-range",1,1048576],["eq","$Content-Type","image/png"],{"X-Amz-Algorithm":"AWS4-HMAC-SHA256"}]}`)
	p, err := ParsePostPolicy(doc)
	if err != nil {
		t.Fatal(err)
	}
	base := func() map[string]string {
		return map[string]string{"bucket": "herald", "key": "uploads/demo/a.png", "content-type": "image/png", "x-amz-algorithm": "AWS4-HMAC-SHA256",
			"policy": doc, "x-amz-signature": "sig", "x-ignore-me": "1"}
	}
	cases := []struct {
		name   string
		mutate func(map[string]string)
		at     time.Time
		ok     bool
	}{
		{"within policy", nil, now, true},
		{"wrong bucket", func(f map[string]string) { f["bucket"] = "other" }, now, false},
		{"key outside prefix", func(f map[string]string) { f["key"] = "converted/a.png" }, now, false},
		{"wrong content type", func(f map[string]string) { f["content-type"] = "text/html" }, now, false},
		{"missing content type", func(f map[string]string) { delete(f, "content-type") }, now, false},
		{"extra field", func(f map[string]string) { f["acl"] = "public-read" }, now, false},
		{"expired", nil, now.Add(time.Hour), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			if tc.mutate != nil {
				tc.mutate(f)
			}
			minLen, maxLen, err := p.Check(f, tc.at)
			if (err == nil) != tc.ok {
				t.Fatalf("got err %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrAccessDenied) {
				t.Fatalf("got %v want AccessDenied", err)
			}
			if tc.ok && (minLen != 1 || maxLen != 1048576) {
				t.Fatalf("length range: got %d..%d", minLen, maxLen)
			}
		})
	}
}

func TestParsePostPolicyRejects(t *testing.T) {
	for _, doc := range []string{
		"not base64!",
		b64(`{"conditions":[]}`),
		b64(`{"expiration":"tomorrow","conditions":[]}`),
		b64(`{"expiration":"2026-11-23T18:15:00Z","conditions":[["content-length-range",10,1]]}`),
		b64(`{"expiration":"2026-11-23T18:15:00Z","conditions":[["eq","key","x"]]}`),
		b64(`{"expiration":"2026-11-23T18:15:00Z","conditions":[{"a":"1","b":"2"}]}`),
		b64(`{"expiration":"2026-11-23T18:15:00Z","conditions":[["regex","$key","x"]]}`),
		b64(`{"expiration":"2026-11-23T18:15:00Z","conditions":[42]}`),
	} {
		if _, err := ParsePostPolicy(doc); !errors.Is(err, ErrBadPolicy) {
			t.Errorf("%s: got %v want ErrBadPolicy", doc, err)
		}
	}
}

func FuzzParsePostPolicy(f *testing.F) {
	f.Add(`{"expiration":"2026-11-23T18:15:00Z","conditions":[{"bucket":"herald"},["starts-with","$key","uploads/"],["content-length-range",1,10]]}`)
	f.Add(`{"expiration":"2026-11-23T18:15:00.000Z","conditions":[["eq","$Content-Type","image/png"],["content-length-range","0","5"]]}`)
	f.Add(`{"expiration":null,"conditions":[[]]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		p, err := ParsePostPolicy(b64(doc))
		if err != nil {
			if !errors.Is(err, ErrBadPolicy) {
				t.Fatalf("error not ErrBadPolicy: %v", err)
			}
			return
		}
		for _, c := range p.Conditions {
			if c.Op == "content-length-range" && (c.Min < 0 || c.Max < c.Min) {
				t.Fatalf("accepted bad range %+v", c)
			}
		}
		_, _, _ = p.Check(map[string]string{"key": "k", "bucket": "b"}, p.Expiration)
	})
}

func TestEventKey(t *testing.T) {
	cases := []struct{ in, want string }{
		{"uploads/demo/ch/job/photo.png", "uploads/demo/ch/job/photo.png"},
		{"uploads/my photo.png", "uploads/my+photo.png"},
		{"a+b=c&d?.txt", "a%2Bb%3Dc%26d%3F.txt"},
		{"ü", "%C3%BC"},
	}
	for _, tc := range cases {
		if got := EventKey(tc.in); got != tc.want {
			t.Errorf("EventKey(%q): got %q want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	cases := []struct {
		h          string
		start, end int64
		ok         bool
		err        bool
	}{
		{"bytes=0-9", 0, 9, true, false},
		{"bytes=5-", 5, 99, true, false},
		{"bytes=-10", 90, 99, true, false},
		{"bytes=90-200", 90, 99, true, false},
		{"bytes=100-", 0, 0, false, true},
		{"bytes=9-1", 0, 0, false, false},
		{"items=0-1", 0, 0, false, false},
		{"bytes=0-1,3-4", 0, 0, false, false},
	}
	for _, tc := range cases {
		br, ok, err := parseRange(tc.h, 100)
		if ok != tc.ok || (err != nil) != tc.err || (ok && (br.start != tc.start || br.end != tc.end)) {
			t.Errorf("%s: got %+v ok=%v err=%v", tc.h, br, ok, err)
		}
	}
}

func TestWildcardMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "http://x", true},
		{"https://*.example.com", "https://a.example.com", true},
		{"https://*.example.com", "http://a.example.com", false},
		{"http://localhost:8080", "http://localhost:8080", true},
		{"http://localhost:8080", "http://localhost:8081", false},
	}
	for _, tc := range cases {
		if got := wildcardMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("%s ~ %s: got %v", tc.pattern, tc.s, got)
		}
	}
}
