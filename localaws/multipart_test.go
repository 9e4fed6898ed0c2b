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
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
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
