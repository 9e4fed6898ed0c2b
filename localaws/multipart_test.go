package localaws

import (
	"bytes"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/internal/testkit"
)

func TestMultipartUpload(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	b, k := aws.String("herald"), aws.String("uploads/video.mp4")
	part1 := bytes.Repeat([]byte("a"), 5<<20)
	part2 := []byte("tail")
	mp, err := e.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k, ContentType: aws.String("video/mp4"), Metadata: map[string]string{"job": "j9"}})
	if err != nil {
		t.Fatal(err)
	}
	up := func(n int32, data []byte) *string {
		t.Helper()
		out, err := e.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: mp.UploadId, PartNumber: aws.Int32(n), Body: bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		return out.ETag
	}
	e1, e2 := up(1, part1), up(2, part2)
	parts, err := e.s3.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: k, UploadId: mp.UploadId})
	if err != nil {
		t.Fatal(err)
	}
	if len(parts.Parts) != 2 || aws.ToInt64(parts.Parts[0].Size) != 5<<20 || aws.ToString(parts.Parts[1].ETag) != aws.ToString(e2) {
		t.Fatalf("ListParts: %+v", parts.Parts)
	}
	complete := func(ps ...s3types.CompletedPart) error {
		_, err := e.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: mp.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: ps}})
		return err
	}
	if got, want := apiCode(complete(s3types.CompletedPart{PartNumber: aws.Int32(1), ETag: aws.String(`"0000"`)}, s3types.CompletedPart{PartNumber: aws.Int32(2), ETag: e2})), "InvalidPart"; got != want {
		t.Errorf("wrong etag: got %q want %q", got, want)
	}
	if got, want := apiCode(complete(s3types.CompletedPart{PartNumber: aws.Int32(2), ETag: e2}, s3types.CompletedPart{PartNumber: aws.Int32(1), ETag: e1})), "InvalidPartOrder"; got != want {
		t.Errorf("order: got %q want %q", got, want)
	}
	if err := complete(s3types.CompletedPart{PartNumber: aws.Int32(1), ETag: e1}, s3types.CompletedPart{PartNumber: aws.Int32(2), ETag: e2}); err != nil {
		t.Fatal(err)
	}
	m1, m2 := md5.Sum(part1), md5.Sum(part2)
	all := md5.Sum(append(m1[:], m2[:]...))
	head, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToString(head.ETag), fmt.Sprintf(`"%s-2"`, hex.EncodeToString(all[:])); got != want {
		t.Errorf("etag: got %s want %s", got, want)
	}
	if aws.ToString(head.ContentType) != "video/mp4" || head.Metadata["job"] != "j9" || aws.ToInt64(head.ContentLength) != int64(len(part1)+len(part2)) {
		t.Errorf("head: %s %v %d", aws.ToString(head.ContentType), head.Metadata, aws.ToInt64(head.ContentLength))
	}
	get, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, Range: aws.String("bytes=-6")})
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if string(tail) != "aatail" {
		t.Errorf("tail: got %q", tail)
	}
	// The upload is gone after completion.
	if _, err := e.s3.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: k, UploadId: mp.UploadId}); apiCode(err) != "NoSuchUpload" {
		t.Errorf("ListParts after complete: %v", err)
	}
}

func TestMultipartErrors(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	b, k := aws.String("herald"), aws.String("small-parts")
	mp, err := e.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	var parts []s3types.CompletedPart
	for n := int32(1); n <= 2; n++ {
		out, err := e.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: mp.UploadId, PartNumber: aws.Int32(n), Body: strings.NewReader("tiny")})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, s3types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag})
	}
	_, err = e.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: mp.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}})
	if got, want := apiCode(err), "EntityTooSmall"; got != want {
		t.Errorf("small parts: got %q want %q", got, want)
	}
	if _, err := e.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: k, UploadId: mp.UploadId}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		call func() error
	}{
		{"upload part after abort", func() error {
			_, err := e.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: mp.UploadId, PartNumber: aws.Int32(3), Body: strings.NewReader("x")})
			return err
		}},
		{"abort unknown", func() error {
			_, err := e.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: k, UploadId: aws.String("../../etc")})
			return err
		}},
		{"complete unknown", func() error {
			_, err := e.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: aws.String("0123456789abcdef0123456789abcdef"), MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := apiCode(tc.call()), "NoSuchUpload"; got != want {
				t.Fatalf("got %q want %q", got, want)
			}
		})
	}
	if _, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k}); apiCode(err) != "NotFound" {
		t.Errorf("aborted upload visible: %v", err)
	}
}

// TestUploadManager drives the SDK's transfer manager, which uploads parts
// concurrently.
func TestUploadManager(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	data := make([]byte, 11<<20+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	up := manager.NewUploader(e.s3, func(u *manager.Uploader) { u.PartSize = 5 << 20; u.Concurrency = 3 })
	out, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("uploads/managed.bin"), Body: io.MultiReader(bytes.NewReader(data)), ContentLength: aws.Int64(int64(len(data)))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(aws.ToString(out.ETag), `-3"`) {
		t.Errorf("etag %s: want 3 parts", aws.ToString(out.ETag))
	}
	get, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String("uploads/managed.bin")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("downloaded object differs")
	}
}

// TestChunkedTrailerOverTLS: over TLS the SDK sends unseekable PutObject
// bodies as aws-chunked with a trailing CRC32 (STREAMING-UNSIGNED-PAYLOAD-
// TRAILER); localaws must decode the framing and verify the checksum.
func TestChunkedTrailerOverTLS(t *testing.T) {
	srv, err := New(Config{Notify: heraldNotify, DataDir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var sawChunked bool
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
			sawChunked = true
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	defer ts.Close()
	hc := ts.Client()
	hc.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: hc.Transport.(*http.Transport).TLSClientConfig.RootCAs}
	c := s3Client(ts.URL, "test", "test", hc)
	ctx := ctxT(t)
	data := bytes.Repeat([]byte("chunky "), 30000)
	// io.MultiReader hides Seek, so the SDK must stream it.
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("chunked"), Body: io.MultiReader(bytes.NewReader(data)), ContentLength: aws.Int64(int64(len(data)))}); err != nil {
		t.Fatal(err)
	}
	if !sawChunked {
		t.Error("SDK did not use aws-chunked; the test no longer covers it")
	}
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String("chunked")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes, want %d", len(got), len(data))
	}
}

// TestPresignedUploadPartFromBrowser is what a browser does with a part URL
// the gateway signed: a CORS preflight for PUT, then the PUT with an
// Origin; the answer exposes ETag (which the browser must send back to
// complete) and is counted once.
func TestPresignedUploadPartFromBrowser(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *Config) { c.Metrics = reg })
	ctx := ctxT(t)
	b, k := aws.String("herald"), aws.String("uploads/demo/ch/job/big.tif")
	mp, err := e.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := s3.NewPresignClient(e.s3).PresignUploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: mp.UploadId, PartNumber: aws.Int32(1)},
		s3.WithPresignExpires(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	const origin = "http://localhost:8080"
	pre := preflight(t, signed.URL, origin, "PUT", "")
	if pre.StatusCode != http.StatusOK || pre.Header.Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("preflight: %d %v", pre.StatusCode, pre.Header)
	}
	data := bytes.Repeat([]byte{7}, 1<<20)
	req, _ := http.NewRequest(http.MethodPut, signed.URL, bytes.NewReader(data))
	req.Header.Set("Origin", origin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sum := md5.Sum(data)
	if got, want := resp.Header.Get("ETag"), `"`+hex.EncodeToString(sum[:])+`"`; resp.StatusCode != http.StatusOK || got != want {
		t.Fatalf("PUT part: %d, ETag %q, want 200 and %q", resp.StatusCode, got, want)
	}
	if exp := resp.Header.Get("Access-Control-Expose-Headers"); resp.Header.Get("Access-Control-Allow-Origin") != origin || !strings.Contains(exp, "ETag") {
		t.Fatalf("CORS on the part PUT: allow-origin %q, expose %q; want the origin and ETag", resp.Header.Get("Access-Control-Allow-Origin"), exp)
	}
	if got := counterWith(t, reg, "herald_localaws_s3_upload_parts_total", "result", "stored"); got != 1 {
		t.Fatalf("parts stored: got %v, want 1", got)
	}
	// A URL past its expiry is refused.
	old, _ := s3.NewPresignClient(e.s3).PresignUploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: mp.UploadId, PartNumber: aws.Int32(2)},
		func(o *s3.PresignOptions) { o.Expires = time.Second })
	time.Sleep(1100 * time.Millisecond)
	req, _ = http.NewRequest(http.MethodPut, old.URL, bytes.NewReader(data))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired part URL: got %d, want 403", resp.StatusCode)
	}
}

// TestIncompleteUploadsAborted: an upload never completed is aborted once
// it is older than AbortIncompleteAfter, and its parts are freed.
func TestIncompleteUploadsAborted(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *Config) { c.AbortIncompleteAfter = time.Second; c.Metrics = reg })
	ctx := ctxT(t)
	b, k := aws.String("herald"), aws.String("uploads/demo/ch/job/abandoned.wav")
	mp, err := e.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: mp.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(make([]byte, 1<<20))}); err != nil {
		t.Fatal(err)
	}
	partsDir := filepath.Join(e.dir, "s3", "parts", aws.ToString(mp.UploadId))
	if _, err := os.Stat(partsDir); err != nil {
		t.Fatalf("parts dir: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.s3.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: k, UploadId: mp.UploadId})
		if apiCode(err) == "NoSuchUpload" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload still there after 10 s (ListParts: %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := os.Stat(partsDir); !os.IsNotExist(err) {
		t.Fatalf("parts dir after the abort: %v, want it gone", err)
	}
	// The sweeper counts the abort just after it removed the parts.
	for range 100 {
		if mfs, _ := reg.Gather(); strings.Contains(fmt.Sprint(mfs), "expired") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := counterWith(t, reg, "herald_localaws_s3_multipart_aborted_total", "reason", "expired"); got != 1 {
		t.Fatalf("aborted (expired): got %v, want 1", got)
	}
}

// counterWith is the value of counter name{label=value} in reg.
func counterWith(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	v, ok := testkit.Metric(t, reg, name, map[string]string{label: value})
	if !ok {
		t.Fatalf("no %s{%s=%q}", name, label, value)
	}
	return v
}
