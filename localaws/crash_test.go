package localaws

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// crashChildEnv names the data dir when the test binary runs as a child
// localaws server for TestCrashDuringWrites.
const crashChildEnv = "LOCALAWS_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(runCrashChild(dir))
	}
	os.Exit(m.Run())
}

// runCrashChild serves localaws on 127.0.0.1:0, prints its URL and serves
// until killed (or its stdin closes, so it never outlives the test).
func runCrashChild(dir string) int {
	srv, err := New(Config{Notify: heraldNotify, Addr: "127.0.0.1:0", DataDir: dir, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if err := srv.Listen(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(srv.URL())
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
}

func startChild(t *testing.T, dir string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child did not print its URL: %v", err)
	}
	c.url = strings.TrimSpace(line)
	return c
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
}

// TestCrashDuringWrites kills the server (SIGKILL) in the middle of a large
// streaming PUT with a multipart upload open, restarts it on the same data
// dir and checks that no partial object is visible, acknowledged objects
// are intact, and the open upload can still be completed.
func TestCrashDuringWrites(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	c1 := startChild(t, dir)
	cl := s3Client(c1.url, "test", "test", nil)
	acked := bytes.Repeat([]byte("acknowledged "), 80000)
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("acked.bin"), Body: bytes.NewReader(acked)}); err != nil {
		t.Fatal(err)
	}
	mp, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("herald"), Key: aws.String("mp.bin")})
	if err != nil {
		t.Fatal(err)
	}
	part1 := bytes.Repeat([]byte{1}, 5<<20)
	p1, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("herald"), Key: aws.String("mp.bin"), UploadId: mp.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(part1)})
	if err != nil {
		t.Fatal(err)
	}

	// A 64 MiB PUT (and a part upload) that never finish: the body is fed
	// by pipes and the server is killed once some of each has arrived.
	streamed := make(chan error, 2)
	var writers []*io.PipeWriter
	for _, target := range []string{"/herald/partial.bin", "/herald/mp.bin?partNumber=2&uploadId=" + *mp.UploadId} {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, _ := http.NewRequest(http.MethodPut, c1.url+target, pr)
		req.ContentLength = 64 << 20
		req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		creds, _ := credentials.NewStaticCredentialsProvider("test", "test", "").Retrieve(ctx)
		if err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).SignHTTP(ctx, creds, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				err = fmt.Errorf("unexpected response %d", resp.StatusCode)
			}
			streamed <- err
		}()
	}
	chunk := bytes.Repeat([]byte("partial!"), 128<<10) // 1 MiB
	for i := 0; i < 8; i++ {
		for _, pw := range writers {
			if _, err := pw.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The bytes are in the server's temp files now; kill it mid-body.
	time.Sleep(100 * time.Millisecond)
	c1.kill(t)
	for _, pw := range writers {
		pw.CloseWithError(io.ErrClosedPipe)
	}
	for range writers {
		<-streamed
	}

	c2 := startChild(t, dir)
	cl = s3Client(c2.url, "test", "test", nil)
	if _, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("herald"), Key: aws.String("partial.bin")}); apiCode(err) != "NotFound" {
		t.Fatalf("partial object after crash: got %v want NotFound", err)
	}
	get, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String("acked.bin")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if !bytes.Equal(got, acked) {
		t.Fatalf("acknowledged object damaged: %d bytes, want %d", len(got), len(acked))
	}
	parts, err := cl.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("herald"), Key: aws.String("mp.bin"), UploadId: mp.UploadId})
	if err != nil {
		t.Fatal(err)
	}
	if len(parts.Parts) != 1 || aws.ToString(parts.Parts[0].ETag) != aws.ToString(p1.ETag) {
		t.Fatalf("parts after crash: %+v (the interrupted part must not appear)", parts.Parts)
	}
	p2, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("herald"), Key: aws.String("mp.bin"), UploadId: mp.UploadId, PartNumber: aws.Int32(2), Body: strings.NewReader("end")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("herald"), Key: aws.String("mp.bin"), UploadId: mp.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{PartNumber: aws.Int32(1), ETag: p1.ETag}, {PartNumber: aws.Int32(2), ETag: p2.ETag}}}}); err != nil {
		t.Fatal(err)
	}
	head, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("herald"), Key: aws.String("mp.bin")})
	if err != nil || aws.ToInt64(head.ContentLength) != 5<<20+3 {
		t.Fatalf("completed after restart: %v %v", head, err)
	}
	// The interrupted bodies left nothing behind.
	if left, _ := os.ReadDir(filepath.Join(dir, "s3", "tmp")); len(left) != 0 {
		t.Errorf("temp files left after restart: %d", len(left))
	}
}
