package localaws

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func preflight(t *testing.T, url, origin, method, headers string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, url, nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", method)
	if headers != "" {
		req.Header.Set("Access-Control-Request-Headers", headers)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestCORS(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	// The default bucket allows the configured origin.
	got, err := e.s3.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: aws.String("herald")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.CORSRules) != 1 || got.CORSRules[0].AllowedOrigins[0] != "http://localhost:8080" {
		t.Fatalf("default CORS: %+v", got.CORSRules)
	}
	cases := []struct {
		name, bucket, origin, method, headers string
		wantStatus                            int
		wantOrigin                            string
	}{
		{"allowed POST", "herald", "http://localhost:8080", "POST", "content-type", 200, "http://localhost:8080"},
		{"allowed PUT with headers", "herald", "http://localhost:8080", "PUT", "content-type,x-amz-meta-job", 200, "http://localhost:8080"},
		{"other origin", "herald", "http://evil.example", "POST", "", 403, ""},
		{"method not allowed", "herald", "http://localhost:8080", "DELETE", "", 403, ""},
		{"bucket without CORS", "plain", "http://localhost:8080", "GET", "", 403, ""},
	}
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("plain")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := preflight(t, e.url+"/"+tc.bucket+"/uploads/x", tc.origin, tc.method, tc.headers)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status: got %d want %d", resp.StatusCode, tc.wantStatus)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.wantOrigin {
				t.Errorf("allow-origin: got %q want %q", got, tc.wantOrigin)
			}
			if tc.wantStatus == 200 && !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), tc.method) {
				t.Errorf("allow-methods %q lacks %s", resp.Header.Get("Access-Control-Allow-Methods"), tc.method)
			}
		})
	}
	// Replace the rules through the API; wildcard origins work.
	_, err = e.s3.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: aws.String("plain"), CORSConfiguration: &s3types.CORSConfiguration{CORSRules: []s3types.CORSRule{{
		AllowedOrigins: []string{"https://*.example.com"}, AllowedMethods: []string{"GET"}, ExposeHeaders: []string{"ETag"}, MaxAgeSeconds: aws.Int32(60)}}}})
	if err != nil {
		t.Fatal(err)
	}
	resp := preflight(t, e.url+"/plain/k", "https://app.example.com", "GET", "")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Max-Age") != "60" {
		t.Fatalf("wildcard preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// Actual requests carry the headers too.
	if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("plain"), Key: aws.String("k"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	ps := s3.NewPresignClient(e.s3)
	get, err := ps.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("plain"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", get.URL, nil)
	req.Header.Set("Origin", "https://app.example.com")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 200 || r2.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || r2.Header.Get("Access-Control-Expose-Headers") != "ETag" {
		t.Fatalf("actual request CORS headers: %d %v", r2.StatusCode, r2.Header)
	}
	// Invalid configurations are refused.
	_, err = e.s3.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: aws.String("plain"), CORSConfiguration: &s3types.CORSConfiguration{CORSRules: []s3types.CORSRule{{
		AllowedOrigins: []string{"*"}, AllowedMethods: []string{"PATCH"}}}}})
	if got, want := apiCode(err), "InvalidRequest"; got != want {
		t.Errorf("bad method: got %q want %q", got, want)
	}
	if _, err := e.s3.DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: aws.String("plain")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s3.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: aws.String("plain")}); apiCode(err) != "NoSuchCORSConfiguration" {
		t.Errorf("after delete: %v", err)
	}
}
