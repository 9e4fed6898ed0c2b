// Package s3 is localaws's S3-compatible object store: path-style buckets,
// objects streamed to disk with atomic commits, multipart uploads, browser
// POST uploads checked against their signed policy, bucket CORS, and bucket
// event notifications delivered to SQS in AWS's message format.
//
// It is written directly rather than on gofakes3: gofakes3's backends take
// whole objects in memory and its POST, CORS and notification support does
// not match S3's, while Herald needs streaming bodies, crash-safe commits,
// an atomic If-None-Match create and byte-exact event messages.
//
// Requests reach ServeHTTP already authenticated by the localaws router
// (see package sigv4); only browser POST uploads (signed policy) and CORS
// preflights are authenticated or exempted here.
package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/localaws/sigv4"
)

// Notifier delivers an event notification body to a queue by name; the
// localaws SQS service implements it.
type Notifier interface {
	Enqueue(ctx context.Context, queueName, body string) (messageID string, err error)
}

// Config configures a Service.
type Config struct {
	// DataDir holds the index and object bodies. Required.
	DataDir string
	// Region is reported in events and GetBucketLocation; default us-east-1.
	Region string
	// AccountID names the owner; default 000000000000.
	AccountID string
	// Verifier checks browser POST policy signatures. Required.
	Verifier *sigv4.Verifier
	// Notifier receives bucket event notifications; nil drops them (and
	// makes queue destinations unverifiable).
	Notifier Notifier
	// MaxObjectSize bounds a single PUT or part; default 5 GiB as S3.
	MaxObjectSize int64
	// AbortIncompleteAfter aborts multipart uploads still incomplete this
	// long after they began, freeing their parts (S3's lifecycle rule
	// AbortIncompleteMultipartUpload); default DefaultAbortIncompleteAfter,
	// negative never.
	AbortIncompleteAfter time.Duration
	// Metrics registers the service's counters; nil registers none.
	Metrics prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Service serves the S3 API for already-authenticated requests.
type Service struct {
	cfg     Config
	log     *slog.Logger
	store   *store
	now     func() time.Time
	metrics *metrics
	// wake nudges the outbox deliverer.
	wake chan struct{}
	// deliverMu serialises outbox delivery so one event is not sent twice
	// by the request path and the background loop at once.
	deliverMu sync.Mutex
	failures  map[string]int // outbox key -> failed attempts; under deliverMu
}

var _ http.Handler = (*Service)(nil)

// New opens (or creates) the store in cfg.DataDir and cleans up what a
// crash left behind.
func New(cfg Config) (*Service, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("s3: DataDir is required")
	}
	if cfg.Verifier == nil {
		return nil, fmt.Errorf("s3: Verifier is required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.AccountID == "" {
		cfg.AccountID = "000000000000"
	}
	if cfg.MaxObjectSize == 0 {
		cfg.MaxObjectSize = 5 << 30
	}
	if cfg.AbortIncompleteAfter == 0 {
		cfg.AbortIncompleteAfter = DefaultAbortIncompleteAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	st, err := openStore(filepath.Clean(cfg.DataDir))
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("svc", "s3"), store: st, now: cfg.Now, metrics: m, wake: make(chan struct{}, 1), failures: map[string]int{}}, nil
}

// Close closes the store.
func (s *Service) Close() error { return s.store.close() }

type ctxKey int

const idsKey ctxKey = 1

type reqIDs struct{ requestID, hostID string }

func requestIDs(r *http.Request) reqIDs {
	if ids, ok := r.Context().Value(idsKey).(reqIDs); ok {
		return ids
	}
	return reqIDs{}
}

func newRequestIDs() reqIDs {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return reqIDs{requestID: strings.ToUpper(hex.EncodeToString(b[:8])), hostID: hex.EncodeToString(b[8:])}
}

// WithRequestIDs gives r S3 request ids (x-amz-request-id, x-amz-id-2) and
// sets them on w; the router calls it before answering, ServeHTTP too.
func WithRequestIDs(w http.ResponseWriter, r *http.Request) *http.Request {
	if _, ok := r.Context().Value(idsKey).(reqIDs); ok {
		return r
	}
	ids := newRequestIDs()
	w.Header().Set("X-Amz-Request-Id", ids.requestID)
	w.Header().Set("X-Amz-Id-2", ids.hostID)
	w.Header().Set("Server", "AmazonS3")
	return r.WithContext(context.WithValue(r.Context(), idsKey, ids))
}

// WriteAuthError answers a request the router could not authenticate, with
// S3's XML error and the bucket's CORS headers (so a browser can read it).
func (s *Service) WriteAuthError(w http.ResponseWriter, r *http.Request, err error) {
	r = WithRequestIDs(w, r)
	s.applyCORS(w, r)
	s.writeError(w, r, err)
}

// splitPath splits a path-style request path into bucket and key.
func splitPath(p string) (bucket, key string) {
	p = strings.TrimPrefix(p, "/")
	bucket, key, _ = strings.Cut(p, "/")
	return bucket, key
}

// ServeHTTP routes an S3 REST request.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = WithRequestIDs(w, r)
	bucket, key := splitPath(r.URL.Path)
	if r.Method == http.MethodOptions {
		s.preflight(w, r, bucket)
		return
	}
	s.applyCORS(w, r)
	if r.Method == http.MethodPost && key == "" && bucket != "" && isMultipartForm(r) {
		s.postObject(w, r, bucket)
		return
	}
	if sigv4.ResultFrom(r.Context()) == nil {
		s.writeError(w, r, ErrAccessDenied)
		return
	}
	q := r.URL.Query()
	switch {
	case bucket == "":
		if r.Method != http.MethodGet {
			s.writeError(w, r, ErrMethodNotAllowed)
			return
		}
		s.listBuckets(w, r)
	case key == "":
		s.serveBucket(w, r, bucket, q)
	default:
		if len(key) > 1024 {
			s.writeError(w, r, ErrKeyTooLong.with(bucket, "", nil, ""))
			return
		}
		s.serveObject(w, r, bucket, key, q)
	}
}
