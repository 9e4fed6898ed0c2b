package localaws

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRoute(t *testing.T) {
	cases := []struct {
		name, method, target string
		headers              map[string]string
		want                 Service
	}{
		{"s3 header", "GET", "/herald/k", map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=test/20261123/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + strings.Repeat("a", 64)}, ServiceS3},
		{"sqs header", "POST", "/", map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=test/20261123/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=" + strings.Repeat("a", 64)}, ServiceSQS},
		{"presigned s3", "GET", "/herald/k?X-Amz-Credential=test%2F20261123%2Fus-east-1%2Fs3%2Faws4_request", nil, ServiceS3},
		{"other service", "POST", "/", map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=test/20261123/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=" + strings.Repeat("a", 64)}, ServiceUnknown},
		{"sqs json target", "POST", "/", map[string]string{"X-Amz-Target": "AmazonSQS.SendMessage"}, ServiceSQS},
		{"sqs query form", "POST", "/", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, ServiceSQS},
		{"browser post", "POST", "/herald", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, ServiceS3},
		{"preflight", "OPTIONS", "/herald/k", map[string]string{"Origin": "http://localhost:8080"}, ServiceS3},
		{"anonymous get", "GET", "/herald/k", nil, ServiceS3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if got := Route(r); got != tc.want {
				t.Fatalf("got %q want %q", got, tc.want)
			}
		})
	}
}

// FuzzRoute feeds arbitrary requests through routing and the full
// authenticating handler: nothing may panic, and an unsigned request must
// never be served successfully.
func FuzzRoute(f *testing.F) {
	f.Add("GET", "/herald/k", "AWS4-HMAC-SHA256 Credential=test/20261123/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00", "", "")
	f.Add("POST", "/", "", "AmazonSQS.SendMessage", "application/x-amz-json-1.0")
	f.Add("POST", "/herald", "", "", "multipart/form-data; boundary=zz")
	f.Add("OPTIONS", "/herald/k", "", "", "")
	f.Add("PUT", "/herald/k?X-Amz-Credential=a/b/c/d/e&X-Amz-Signature=1", "", "", "")
	srv, err := New(Config{Notify: heraldNotify, DataDir: f.TempDir(), Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, method, target, auth, amzTarget, contentType string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		r, err := http.NewRequest(method, "http://127.0.0.1:4566"+target, strings.NewReader("body"))
		if err != nil {
			return
		}
		r.RequestURI = r.URL.RequestURI()
		r.Header.Set("Authorization", auth)
		r.Header.Set("X-Amz-Target", amzTarget)
		r.Header.Set("Content-Type", contentType)
		_ = Route(r)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code < 300 && method != http.MethodOptions {
			t.Fatalf("unsigned %s %s served with %d", method, target, w.Code)
		}
	})
}
