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

	"github.com/heraldgw/herald/topic"
)

func TestSafeFilename(t *testing.T) {
	tests := []struct{ in, want string }{
		{"photo.jpg", "photo.jpg"},
		{"../../etc/passwd", "passwd"},
		{`C:\Users\me\My Photo (1).png`, "My_Photo__1_.png"},
		{"..", "file"},
		{"...hidden", "hidden"},
		{"", "file"},
		{"日本.png", "__.png"},
		{"a/b/", "file"},
		{"x[0].tif", "x_0_.tif"},
		{strings.Repeat("a", 300) + ".jpeg", strings.Repeat("a", 95) + ".jpeg"},
	}
	for _, tt := range tests {
		if got := SafeFilename(tt.in); got != tt.want {
			t.Errorf("SafeFilename(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzSafeFilename(f *testing.F) {
	for _, s := range []string{"photo.jpg", "../x", "..", "a\x00b", strings.Repeat("é", 200), "/", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := SafeFilename(in)
		if got == "" || got == "." || got == ".." || len(got) > maxFilename || got[0] == '.' {
			t.Fatalf("SafeFilename(%q) = %q", in, got)
		}
		for _, c := range []byte(got) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				t.Fatalf("SafeFilename(%q) = %q has %q", in, got, c)
			}
		}
		if SafeFilename(got) != got {
			t.Fatalf("not idempotent: %q → %q → %q", in, got, SafeFilename(got))
		}
	})
}

func TestParseUploadKey(t *testing.T) {
	tests := []struct {
		key     string
		want    JobKey
		file    string
		wantErr bool
	}{
		{key: "uploads/demo/ch_1/job-1/photo.jpg", want: JobKey{"demo", "ch_1", "job-1"}, file: "photo.jpg"},
		{key: "uploads/demo/ch/job/my photo.jpg", want: JobKey{"demo", "ch", "job"}, file: "my photo.jpg"},
		{key: "uploads/demo/ch/job/", wantErr: true},
		{key: "uploads/demo/ch/photo.jpg", wantErr: true},
		{key: "uploads/demo/ch/job/a/b.jpg", wantErr: true},
		{key: "uploads/de mo/ch/job/a.jpg", wantErr: true},
		{key: "uploads/demo/+/job/a.jpg", wantErr: true},
		{key: "other/demo/ch/job/a.jpg", wantErr: true},
	}
	for _, tt := range tests {
		k, file, err := ParseUploadKey(tt.key)
		if (err != nil) != tt.wantErr || err == nil && (k != tt.want || file != tt.file) {
			t.Errorf("ParseUploadKey(%q) = %+v, %q, %v; want %+v, %q, err %v", tt.key, k, file, err, tt.want, tt.file, tt.wantErr)
		}
	}
}

func FuzzParseUploadKey(f *testing.F) {
	for _, s := range []string{"uploads/demo/ch/job/a.jpg", "uploads/a/b/c/", "uploads////", "uploads/$/#/+/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		k, file, err := ParseUploadKey(key)
		if err != nil {
			return
		}
		if k.UploadKey(file) != key {
			t.Fatalf("round trip %q → %q", key, k.UploadKey(file))
		}
		if err := topic.ValidName(topic.Job(k.App, k.Channel, k.JobID)); err != nil {
			t.Fatalf("key %q gives an invalid topic: %v", key, err)
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"herald":"job","v":1,"app":"demo","channel":"c","jobId":"j","source":"upload","step":"output","input":{"bucket":"b","key":"k","size":1},"pipeline":"image","outputs":["a.webp"],"output":"a.webp"}`))
	f.Add([]byte(`{"herald":"job","v":1,"app":"demo","channel":"c","jobId":"j","source":"submit","step":"start","input":{"bucket":"b","key":"k","size":0}}`))
	f.Add([]byte(`{"herald":"job","v":1,"outputs":["../x"],"output":"../x","step":"output"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := DecodeState(body)
		if err != nil {
			return
		}
		if !st.job().valid() || (st.Step == StepOutput && SafeFilename(st.Output) != st.Output) {
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
	req := func(name, ct string, size int64) UploadRequest {
		return UploadRequest{App: "demo", Channel: ch, Filename: name, ContentType: ct, Size: size, MaxBytes: 1000}
	}
	for _, tt := range []struct {
		name    string
		req     UploadRequest
		wantErr error
	}{
		{"text", req("a.txt", "text/plain", 10), ErrUnsupportedFormat},
		{"no type, unknown ext", req("a.bin", "", 10), ErrUnsupportedFormat},
		{"too large", req("a.png", "image/png", 1001), ErrTooLarge},
		{"empty", req("a.png", "image/png", 0), ErrInvalid},
		{"no name", req("", "image/png", 10), ErrInvalid},
		{"bad channel", UploadRequest{App: "demo", Channel: "a/b", Filename: "a.png", ContentType: "image/png", Size: 1, MaxBytes: 10}, ErrInvalid},
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
	for _, want := range []string{`["content-length-range",1,1000]`, `["eq","$Content-Type","image/jpeg"]`, `{"key":"` + g.Key + `"}`} {
		if !strings.Contains(string(policy), want) {
			t.Errorf("policy %s lacks %s", policy, want)
		}
	}
	if d := time.Until(g.ExpiresAt); d > MaxUploadExpiry || d < MaxUploadExpiry-time.Minute {
		t.Errorf("expires in %v, want the 15 min cap", d)
	}
}
