package processor

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/topic"
)

func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"herald":"job","v":1,"app":"demo","channel":"c","jobId":"j","source":"upload","step":"output","input":{"bucket":"b","key":"k","size":1},"pipeline":"image","outputs":["a.webp"],"output":"a.webp"}`))
	f.Add([]byte(`{"herald":"job","v":1,"app":"demo","channel":"c","jobId":"j","source":"submit","step":"start","input":{"bucket":"b","key":"k","size":0}}`))
	f.Add([]byte(`{"herald":"job","v":1,"outputs":["../x"],"output":"../x","step":"output"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := DecodeState(body)
		if err != nil {
			return
		}
		if !st.job().Valid() || (st.Step == StepOutput && job.SafeFilename(st.Output) != st.Output) {
			t.Fatalf("accepted unsafe state %+v", st)
		}
		b, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeState(b); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	const key = "converted/demo/ch/job/manifest.json"
	f.Add([]byte(`{"outputs":[{"name":"a","key":"converted/demo/ch/job/a.webp","contentType":"image/webp","bytes":1}]}`))
	f.Add([]byte(`{"outputs":[{"name":"a","key":"converted/demo/ch/job2/a.webp","contentType":"x","bytes":1}]}`))
	f.Add([]byte(`{"outputs":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseManifest(key, body)
		if err != nil {
			return
		}
		for _, o := range m.Outputs {
			if !strings.HasPrefix(o.Key, "converted/demo/ch/job/") || o.Key == key {
				t.Fatalf("accepted output key %q", o.Key)
			}
		}
	})
}

func TestCanonicalType(t *testing.T) {
	tests := []struct{ declared, file, want string }{
		{"image/jpeg", "a.jpg", "image/jpeg"},
		{"IMAGE/JPG", "a.jpg", "image/jpeg"},
		{"audio/x-wav", "a.wav", "audio/wav"},
		{"audio/x-m4a", "a.m4a", "audio/mp4"},
		{"", "a.psd", "image/vnd.adobe.photoshop"},
		{"application/octet-stream", "a.HEIC", "image/heic"},
		{"", "a.exe", ""},
		{"text/plain; charset=utf-8", "a.txt", "text/plain"},
	}
	for _, tt := range tests {
		if got := canonicalType(tt.declared, tt.file); got != tt.want {
			t.Errorf("canonicalType(%q, %q) = %q, want %q", tt.declared, tt.file, got, tt.want)
		}
	}
}

// TestGrantUpload checks the grant's checks and the presigned policy,
// signed by the real SDK (nothing is sent).
func TestGrantUpload(t *testing.T) {
	c := s3.New(s3.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String("http://127.0.0.1:4566"), UsePathStyle: true})
	in, err := NewIntake(IntakeConfig{Presigner: s3.NewPresignClient(c), Bucket: "herald", UploadExpiry: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const ch = "AAAAAAAAAAAAAAAAAAAAAA"
	req := func(name, ct string, size int64) job.UploadRequest {
		return job.UploadRequest{App: "demo", Channel: ch, Filename: name, ContentType: ct, Size: size, MaxBytes: 1000}
	}
	for _, tt := range []struct {
		name    string
		req     job.UploadRequest
		wantErr error
	}{
		{"text", req("a.txt", "text/plain", 10), job.ErrUnsupportedFormat},
		{"no type, unknown ext", req("a.bin", "", 10), job.ErrUnsupportedFormat},
		{"too large", req("a.png", "image/png", 1001), job.ErrTooLarge},
		{"negative size", req("a.png", "image/png", -1), job.ErrInvalid},
		{"no size declared", req("a.png", "image/png", 0), job.ErrInvalid},
		{"type the app does not allow", job.UploadRequest{App: "demo", Channel: ch, Filename: "a.png", ContentType: "image/png", Size: 1, MaxBytes: 10, AllowedTypes: []string{"audio/*"}}, job.ErrUnsupportedFormat},
		{"no name", req("", "image/png", 10), job.ErrInvalid},
		{"bad channel", job.UploadRequest{App: "demo", Channel: "a/b", Filename: "a.png", ContentType: "image/png", Size: 1, MaxBytes: 10}, job.ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := in.GrantUpload(context.Background(), tt.req); !errors.Is(err, tt.wantErr) {
				t.Errorf("GrantUpload() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
	g, err := in.GrantUpload(context.Background(), req("../My Photo.JPG", "image/jpg", 500))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.JobID) != 22 || !topic.ValidSegment(g.JobID) {
		t.Errorf("job id %q: want 22 topic-safe characters", g.JobID)
	}
	if want := "uploads/demo/" + ch + "/" + g.JobID + "/My_Photo.JPG"; g.Key != want || g.Fields["key"] != want {
		t.Errorf("key %q (field %q), want %q", g.Key, g.Fields["key"], want)
	}
	if g.Fields["Content-Type"] != "image/jpeg" || g.Fields["policy"] == "" || g.Fields["X-Amz-Signature"] == "" {
		t.Errorf("fields %v: want Content-Type image/jpeg, policy and signature", g.Fields)
	}
	policy, err := base64.StdEncoding.DecodeString(g.Fields["policy"])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`["content-length-range",500,500]`, `["eq","$Content-Type","image/jpeg"]`, `{"key":"` + g.Key + `"}`} {
		if !strings.Contains(string(policy), want) {
			t.Errorf("policy %s lacks %s", policy, want)
		}
	}
	if d := time.Until(g.ExpiresAt); d > MaxUploadExpiry || d < MaxUploadExpiry-time.Minute {
		t.Errorf("expires in %v, want the 15 min cap", d)
	}
}
