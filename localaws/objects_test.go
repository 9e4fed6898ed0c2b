package localaws

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestBuckets(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("second")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("second")}); err != nil {
		t.Fatal(err)
	}
	out, err := e.s3.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range out.Buckets {
		names = append(names, *b.Name)
	}
	if got, want := strings.Join(names, ","), "herald,second"; got != want {
		t.Errorf("buckets: got %s want %s", got, want)
	}
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"create again", func() error {
			_, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("second")})
			return err
		}, "BucketAlreadyOwnedByYou"},
		{"bad name", func() error {
			_, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("Bad_Name")})
			return err
		}, "InvalidBucketName"},
		{"head missing", func() error {
			_, err := e.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("nope")})
			return err
		}, "NotFound"},
		{"delete non-empty", func() error {
			if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("second"), Key: aws.String("x"), Body: strings.NewReader("x")}); err != nil {
				return err
			}
			_, err := e.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("second")})
			return err
		}, "BucketNotEmpty"},
		{"put into missing bucket", func() error {
			_, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("nope"), Key: aws.String("x"), Body: strings.NewReader("x")})
			return err
		}, "NoSuchBucket"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := apiCode(tc.call()); got != tc.want {
				t.Fatalf("got %q want %q", got, tc.want)
			}
		})
	}
	if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("second"), Key: aws.String("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("second")}); err != nil {
		t.Fatal(err)
	}
}

func TestObjectRoundTrip(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	keys := []string{"plain.txt", "uploads/demo/a b+c/ü ñ/%2F?#&=.txt", "../../etc/passwd", "dir//double"}
	body := bytes.Repeat([]byte("herald "), 1000)
	sum := md5.Sum(body)
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			put, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String(key), Body: bytes.NewReader(body),
				ContentType: aws.String("text/plain"), Metadata: map[string]string{"job": "j1", "app": "demo"}})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := aws.ToString(put.ETag), `"`+hex.EncodeToString(sum[:])+`"`; got != want {
				t.Errorf("etag: got %s want %s", got, want)
			}
			get, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(get.Body)
			get.Body.Close()
			if !bytes.Equal(got, body) {
				t.Fatalf("body differs")
			}
			if got, want := aws.ToString(get.ContentType), "text/plain"; got != want {
				t.Errorf("content type: got %s want %s", got, want)
			}
			if got, want := fmt.Sprint(get.Metadata), "map[app:demo job:j1]"; got != want {
				t.Errorf("metadata: got %s want %s", got, want)
			}
			head, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("herald"), Key: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := aws.ToInt64(head.ContentLength), int64(len(body)); got != want {
				t.Errorf("size: got %d want %d", got, want)
			}
			rng, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String(key), Range: aws.String("bytes=7-13")})
			if err != nil {
				t.Fatal(err)
			}
			part, _ := io.ReadAll(rng.Body)
			rng.Body.Close()
			if got, want := string(part), "herald "; got != want {
				t.Errorf("range: got %q want %q", got, want)
			}
			if got, want := aws.ToString(rng.ContentRange), fmt.Sprintf("bytes 7-13/%d", len(body)); got != want {
				t.Errorf("content-range: got %s want %s", got, want)
			}
			if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("herald"), Key: aws.String(key)}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("herald"), Key: aws.String(key)}); apiCode(err) != "NotFound" {
				t.Fatalf("head after delete: got %v", err)
			}
		})
	}
}

func TestObjectErrors(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("k"), Body: strings.NewReader("0123456789")}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"missing key", func() error {
			_, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String("nope")})
			return err
		}, "NoSuchKey"},
		{"bad range", func() error {
			_, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String("k"), Range: aws.String("bytes=50-60")})
			return err
		}, "InvalidRange"},
		{"if-match mismatch", func() error {
			_, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String("k"), IfMatch: aws.String(`"abc"`)})
			return err
		}, "PreconditionFailed"},
		{"wrong secret", func() error {
			_, err := s3Client(e.url, "test", "wrong", nil).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String("k")})
			return err
		}, "SignatureDoesNotMatch"},
		{"unknown key id", func() error {
			_, err := s3Client(e.url, "other", "test", nil).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String("k")})
			return err
		}, "InvalidAccessKeyId"},
		{"wrong secret put stores nothing", func() error {
			_, err := s3Client(e.url, "test", "wrong", nil).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("evil"), Body: strings.NewReader("x")})
			if _, herr := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("herald"), Key: aws.String("evil")}); apiCode(herr) != "NotFound" {
				return fmt.Errorf("object stored despite bad signature: %v", herr)
			}
			return err
		}, "SignatureDoesNotMatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := apiCode(tc.call()); got != tc.want {
				t.Fatalf("got %q want %q", got, tc.want)
			}
		})
	}
	t.Run("unsigned", func(t *testing.T) {
		resp, err := http.Get(e.url + "/herald/k")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(b), "<Code>AccessDenied</Code>") {
			t.Fatalf("got %d %s", resp.StatusCode, b)
		}
	})
	t.Run("unsigned sqs", func(t *testing.T) {
		resp, err := http.Post(e.url+"/", "application/x-www-form-urlencoded", strings.NewReader("Action=ListQueues"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(b), "<ErrorResponse>") {
			t.Fatalf("got %d %s", resp.StatusCode, b)
		}
	})
}

func TestListObjectsV2(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	keys := []string{"a/1", "a/2", "a/b/3", "b/1", "c", "d/1", "d/2"}
	for _, k := range keys {
		if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(in s3.ListObjectsV2Input) (keys, prefixes []string) {
		t.Helper()
		in.Bucket = aws.String("herald")
		p := s3.NewListObjectsV2Paginator(e.s3, &in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range out.Contents {
				keys = append(keys, *o.Key)
			}
			for _, c := range out.CommonPrefixes {
				prefixes = append(prefixes, *c.Prefix)
			}
		}
		return keys, prefixes
	}
	cases := []struct {
		name               string
		in                 s3.ListObjectsV2Input
		wantKeys, wantPref string
	}{
		{"all", s3.ListObjectsV2Input{}, "a/1,a/2,a/b/3,b/1,c,d/1,d/2", ""},
		{"paged by 2", s3.ListObjectsV2Input{MaxKeys: aws.Int32(2)}, "a/1,a/2,a/b/3,b/1,c,d/1,d/2", ""},
		{"prefix", s3.ListObjectsV2Input{Prefix: aws.String("a/")}, "a/1,a/2,a/b/3", ""},
		{"delimiter", s3.ListObjectsV2Input{Delimiter: aws.String("/")}, "c", "a/,b/,d/"},
		{"delimiter paged by 1", s3.ListObjectsV2Input{Delimiter: aws.String("/"), MaxKeys: aws.Int32(1)}, "c", "a/,b/,d/"},
		{"prefix and delimiter", s3.ListObjectsV2Input{Prefix: aws.String("a/"), Delimiter: aws.String("/")}, "a/1,a/2", "a/b/"},
		{"start after", s3.ListObjectsV2Input{StartAfter: aws.String("b/1")}, "c,d/1,d/2", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, p := list(tc.in)
			if got := strings.Join(k, ","); got != tc.wantKeys {
				t.Errorf("keys: got %s want %s", got, tc.wantKeys)
			}
			if got := strings.Join(p, ","); got != tc.wantPref {
				t.Errorf("prefixes: got %s want %s", got, tc.wantPref)
			}
		})
	}
	out, err := e.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("herald"), MaxKeys: aws.Int32(3)})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(out.IsTruncated) || aws.ToInt32(out.KeyCount) != 3 || out.NextContinuationToken == nil {
		t.Errorf("truncation: truncated=%v count=%d token=%v", aws.ToBool(out.IsTruncated), aws.ToInt32(out.KeyCount), out.NextContinuationToken)
	}
}

func TestCopyObject(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("src key"), Body: strings.NewReader("payload"),
		ContentType: aws.String("image/png"), Metadata: map[string]string{"a": "1"}}); err != nil {
		t.Fatal(err)
	}
	cp, err := e.s3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("herald"), Key: aws.String("dst"), CopySource: aws.String("herald/src%20key")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToString(cp.CopyObjectResult.ETag), `"`+md5hex("payload")+`"`; got != want {
		t.Errorf("etag: got %s want %s", got, want)
	}
	head, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("herald"), Key: aws.String("dst")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ContentType) != "image/png" || head.Metadata["a"] != "1" {
		t.Errorf("metadata not copied: %s %v", aws.ToString(head.ContentType), head.Metadata)
	}
	_, err = e.s3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("herald"), Key: aws.String("dst2"), CopySource: aws.String("herald/missing")})
	if got, want := apiCode(err), "NoSuchKey"; got != want {
		t.Errorf("copy missing: got %s want %s", got, want)
	}
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestIfNoneMatchIsAtomic races many conditional creates of one key: exactly
// one must win, all others get 412, and the stored body is the winner's.
func TestIfNoneMatchIsAtomic(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	const writers = 16
	var wg sync.WaitGroup
	results := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("done.marker"),
				Body: strings.NewReader(fmt.Sprintf("writer-%02d", i)), IfNoneMatch: aws.String("*")})
		}()
	}
	wg.Wait()
	winners := 0
	winner := ""
	for i, err := range results {
		switch {
		case err == nil:
			winners++
			winner = fmt.Sprintf("writer-%02d", i)
		case apiCode(err) != "PreconditionFailed":
			t.Errorf("writer %d: got %v want PreconditionFailed", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("winners: got %d want 1", winners)
	}
	get, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String("done.marker")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if string(b) != winner {
		t.Fatalf("stored body: got %q want %q", b, winner)
	}
}

func TestPresignedGetPut(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	ps := s3.NewPresignClient(e.s3)
	put, err := ps.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("converted/x/thumb 1.webp")}, s3.WithPresignExpires(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(put.Method, put.URL, strings.NewReader("webp-bytes"))
	for k, v := range put.SignedHeader {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("presigned PUT: status %d", resp.StatusCode)
	}
	get, err := ps.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String("converted/x/thumb 1.webp")}, s3.WithPresignExpires(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(get.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "webp-bytes" {
		t.Fatalf("presigned GET: %d %q", resp.StatusCode, b)
	}
	resp, err = http.Get(strings.Replace(get.URL, "thumb", "thumX", 1))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "SignatureDoesNotMatch") {
		t.Fatalf("tampered presigned GET: %d %s", resp.StatusCode, b)
	}
}

var _ = types.ObjectStorageClassStandard
