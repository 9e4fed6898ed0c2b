package localaws

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// A presigned PUT grants one plain upload: x-amz-* headers the signer did
// not sign (a copy source, metadata, an ACL) must not ride along, or the
// holder of an upload URL could copy any object of the account into it.
func TestPresignedRejectsUnsignedAmzHeaders(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("private/secret"), Body: strings.NewReader("top secret")}); err != nil {
		t.Fatal(err)
	}
	ps := s3.NewPresignClient(e.s3)
	put, err := ps.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("uploads/a/c/j/f.png")}, s3.WithPresignExpires(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, header, value string
	}{
		{"copy source", "X-Amz-Copy-Source", "/herald/private/secret"},
		{"metadata", "X-Amz-Meta-Owner", "someone-else"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(put.Method, put.URL, strings.NewReader("png"))
			for k, v := range put.SignedHeader {
				req.Header[k] = v
			}
			req.Header.Set(tt.header, tt.value)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got, want := resp.StatusCode, http.StatusForbidden; got != want {
				t.Fatalf("status %d, want %d: %s", got, want, b)
			}
			if _, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("herald"), Key: aws.String("uploads/a/c/j/f.png")}); err == nil {
				t.Fatalf("object written by a request with an unsigned %s", tt.header)
			}
		})
	}
}
