package localaws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// testEnv is a localaws server on httptest with real SDK clients.
type testEnv struct {
	srv *Server
	url string
	s3  *s3.Client
	sqs *sqs.Client
	dir string
}

// heraldNotify are the notification rules the gateway passes: uploads, and
// the manifests of external converters.
var heraldNotify = []NotifyRule{
	{ID: "herald-uploads", Prefix: "uploads/"},
	{ID: "herald-manifests", Prefix: "converted/", Suffix: "manifest.json"},
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newEnv(t *testing.T, mutate ...func(*Config)) *testEnv {
	t.Helper()
	cfg := Config{Notify: heraldNotify, DataDir: t.TempDir(), Logger: quietLogger(), CORSOrigins: []string{"http://localhost:8080"}}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	srv.SetBaseURL(ts.URL)
	t.Cleanup(func() {
		ts.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testEnv{srv: srv, url: ts.URL, s3: s3Client(ts.URL, "test", "test", nil), sqs: sqsClient(ts.URL), dir: cfg.DataDir}
}

func awsConfig(key, secret string, hc *http.Client) aws.Config {
	// The checksum settings are what config.LoadDefaultConfig resolves by
	// default (CRC32 on every upload, aws-chunked trailers over TLS).
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported, ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported}
	if hc != nil {
		cfg.HTTPClient = hc
	}
	return cfg
}

func s3Client(url, key, secret string, hc *http.Client) *s3.Client {
	return s3.NewFromConfig(awsConfig(key, secret, hc), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(url)
		o.UsePathStyle = true
	})
}

func sqsClient(url string) *sqs.Client {
	return sqs.NewFromConfig(awsConfig("test", "test", nil), func(o *sqs.Options) { o.BaseEndpoint = aws.String(url) })
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	return t.Context()
}

func newTestServer(srv *Server) *httptest.Server {
	ts := httptest.NewServer(srv.Handler())
	srv.SetBaseURL(ts.URL)
	return ts
}

// postSwappedBody POSTs sent to url with a SigV4 signature and payload hash
// computed over signed: a captured signed request replayed with another
// body. It returns the status and response body.
func postSwappedBody(t *testing.T, ctx context.Context, url, contentType, service, signed, sent string) (int, []byte) {
	t.Helper()
	sum := sha256.Sum256([]byte(signed))
	hash := hex.EncodeToString(sum[:])
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(sent))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, service, "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
