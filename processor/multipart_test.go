package processor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/localaws"
	"github.com/heraldgw/herald/processor/convert"
)

// newMultipartIntake is an Intake on a real localaws (no processor).
func newMultipartIntake(t *testing.T) *Intake {
	t.Helper()
	srv, err := localaws.New(localaws.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, srv.Run)
	c := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(srv.URL())}, func(o *s3.Options) { o.UsePathStyle = true })
	in, err := NewIntake(IntakeConfig{S3: c, Presigner: s3.NewPresignClient(c), Bucket: localaws.DefaultBucket, PartURLExpiry: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// putSigned PUTs data to a presigned part URL and returns the part.
func putSigned(t *testing.T, in *Intake, ref job.UploadRef, n int, data []byte) job.Part {
	t.Helper()
	sp, err := in.SignPart(context.Background(), ref, n)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(sp.Expires); d > 2*time.Minute || d < time.Minute {
		t.Fatalf("part URL expires in %v, want the configured 2 min", d)
	}
	req, _ := http.NewRequest(http.MethodPut, sp.URL, bytes.NewReader(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT part %d: %d", n, resp.StatusCode)
	}
	return job.Part{PartNumber: n, ETag: strings.Trim(resp.Header.Get("ETag"), `"`)}
}

// TestMultipartOverLimitAborted: parts that add up to more than the app's
// limit are refused at completion and the upload is aborted, so its parts
// do not linger until the abandoned-upload sweep.
func TestMultipartOverLimitAborted(t *testing.T) {
	in := newMultipartIntake(t)
	ctx := context.Background()
	const ch = "AAAAAAAAAAAAAAAAAAAAAA"
	lim := job.Limits{MaxBytes: job.MinPartSize + 1<<20}
	up, err := in.CreateMultipart(ctx, job.MultipartRequest{App: "demo", Channel: ch, Filename: "a.wav", ContentType: "audio/wav", Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	ref := job.UploadRef{Key: up.Key, UploadID: up.UploadID, Limits: lim}
	// ETags without quotes, as some clients hand them back.
	parts := []job.Part{putSigned(t, in, ref, 1, make([]byte, job.MinPartSize)), putSigned(t, in, ref, 2, make([]byte, 2<<20))}
	if _, err := in.SignPart(ctx, ref, 3); !errors.Is(err, job.ErrTooLarge) {
		t.Errorf("sign part 3 of a %d-byte limit: got %v, want ErrTooLarge", lim.MaxBytes, err)
	}
	if _, err := in.CompleteMultipart(ctx, ref, parts); !errors.Is(err, job.ErrTooLarge) {
		t.Fatalf("complete over the limit: got %v, want ErrTooLarge", err)
	}
	if _, err := in.ListParts(ctx, ref); !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("list parts after the refusal: got %v, want ErrNotFound (aborted)", err)
	}
}

func TestCheckParts(t *testing.T) {
	const mib = 1 << 20
	held := []job.Part{{PartNumber: 1, Size: 5 * mib, ETag: `"a"`}, {PartNumber: 2, Size: 5 * mib, ETag: `"b"`}, {PartNumber: 3, Size: mib, ETag: `"c"`}, {PartNumber: 5, Size: mib, ETag: `"e"`}}
	p := func(n int, etag string) job.Part { return job.Part{PartNumber: n, ETag: etag} }
	tests := []struct {
		name  string
		parts []job.Part
		max   int64
		want  error
	}{
		{"all, quoted", []job.Part{p(1, `"a"`), p(2, `"b"`), p(3, `"c"`)}, 11 * mib, nil},
		{"all, unquoted", []job.Part{p(1, "a"), p(2, "b"), p(3, "c")}, 11 * mib, nil},
		{"a prefix", []job.Part{p(1, "a"), p(2, "b")}, 10 * mib, nil},
		{"gap in numbers is fine", []job.Part{p(1, "a"), p(2, "b"), p(5, "e")}, 11 * mib, nil},
		{"small part not last", []job.Part{p(1, "a"), p(3, "c"), p(5, "e")}, 11 * mib, job.ErrInvalid},
		{"wrong etag", []job.Part{p(1, "a"), p(2, "x")}, 11 * mib, job.ErrInvalid},
		{"missing part", []job.Part{p(1, "a"), p(4, "d")}, 11 * mib, job.ErrInvalid},
		{"descending", []job.Part{p(2, "b"), p(1, "a")}, 11 * mib, job.ErrInvalid},
		{"duplicate", []job.Part{p(1, "a"), p(1, "a")}, 11 * mib, job.ErrInvalid},
		{"over the limit", []job.Part{p(1, "a"), p(2, "b"), p(3, "c")}, 11*mib - 1, job.ErrTooLarge},
	}
	for _, tt := range tests {
		if got := checkParts(tt.parts, held, tt.max); !errors.Is(got, tt.want) || (tt.want == nil && got != nil) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestBigOutputStoredInParts: an output of OutputPartSize or more is
// stored with a multipart upload (its ETag says how many parts), its
// record in the object's metadata as for a single PUT.
func TestBigOutputStoredInParts(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.OutputPartSize = job.MinPartSize })
	ctx := context.Background()
	dir := t.TempDir()
	tests := []struct {
		file      string
		size      int64
		wantParts string
	}{
		{"big.bin", 2*job.MinPartSize + 123, "-3"},
		{"small.bin", job.MinPartSize - 1, ""},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, tt.file)
		if err := os.WriteFile(path, bytes.Repeat([]byte{1}, int(tt.size)), 0o600); err != nil {
			t.Fatal(err)
		}
		st := &State{App: testApp, Channel: e.channel, JobID: "job1"}
		out := convert.Output{Name: "copy", Path: path, ContentType: "application/octet-stream", Bytes: tt.size}
		if err := e.proc.storeFile(ctx, st, tt.file, out, usage{}); err != nil {
			t.Fatal(err)
		}
		head, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(localaws.DefaultBucket), Key: aws.String(st.job().OutputKey(tt.file))})
		if err != nil {
			t.Fatal(err)
		}
		etag := strings.Trim(aws.ToString(head.ETag), `"`)
		if got := etag[strings.IndexByte(etag+"-", '-'):]; got != tt.wantParts {
			t.Errorf("%s: ETag %s, want the suffix %q", tt.file, etag, tt.wantParts)
		}
		if aws.ToInt64(head.ContentLength) != tt.size || head.Metadata[metaName] != "copy" || head.Metadata[metaJob] != "job1" {
			t.Errorf("%s: %d bytes, metadata %v", tt.file, aws.ToInt64(head.ContentLength), head.Metadata)
		}
	}
}
