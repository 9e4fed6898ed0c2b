// Package localaws is Herald's embedded stand-in for S3 and SQS: one HTTP
// port that the real AWS SDK and CLI talk to, routed by the SigV4 credential
// scope to the S3 service (package localaws/s3) or the SQS service (package
// localaws/sqs), with every request's signature verified first (package
// localaws/sigv4). S3 writes become event notifications in the configured
// queue, as with a real bucket notification configuration.
package localaws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/internal/lifecycle"
	"github.com/heraldgw/herald/localaws/s3"
	"github.com/heraldgw/herald/localaws/sigv4"
	"github.com/heraldgw/herald/localaws/sqs"
)

// Config configures a Server. Zero fields get the documented defaults.
type Config struct {
	// Addr is the listen address; default "127.0.0.1:4566". Port 0 picks a
	// free port (see Server.URL).
	Addr string
	// DataDir is required; S3 data lives in DataDir/s3, SQS in DataDir/sqs.
	DataDir string
	// Region defaults to us-east-1.
	Region string
	// AccessKey and SecretKey are the one accepted key pair; default
	// test/test.
	AccessKey, SecretKey string
	// Bucket is created at start; default "herald".
	Bucket string
	// Queue is created at start with a dead-letter queue "<Queue>-dlq"
	// (maxReceiveCount 5) and VisibilityTimeout 30; default "herald-events".
	Queue string
	// Notify are the default bucket's notification rules: each sends the
	// s3:ObjectCreated:* events of the keys it matches to Queue. Empty
	// sends none. (localaws knows no key layout; the gateway passes its
	// own.)
	Notify []NotifyRule
	// CORSOrigins are allowed by the default bucket's CORS rule (POST, PUT,
	// GET, HEAD); empty leaves the bucket's CORS configuration alone.
	CORSOrigins []string
	// IdleTimeout closes a keep-alive connection idle this long; default
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// BodyGrace and BodyMinRate bound how slowly a request body may
	// arrive: after BodyGrace it must keep up BodyMinRate bytes per second
	// on average, or the request ends. Defaults DefaultBodyGrace and
	// DefaultBodyMinRate.
	BodyGrace   time.Duration
	BodyMinRate int64
	// AbortIncompleteAfter aborts multipart uploads left incomplete this
	// long (S3's AbortIncompleteMultipartUpload lifecycle rule); default
	// 24h, negative never.
	AbortIncompleteAfter time.Duration
	// Metrics registers localaws's counters; nil registers none.
	Metrics prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultAddr      = "127.0.0.1:4566"
	DefaultRegion    = "us-east-1"
	DefaultBucket    = "herald"
	DefaultQueue     = "herald-events"
	DefaultAccountID = "000000000000"
)

// NotifyRule is one notification rule of the default bucket: created
// objects whose keys start with Prefix and end with Suffix (either may be
// empty) are reported to the queue, with ID as the configuration id.
type NotifyRule struct {
	ID, Prefix, Suffix string
}

func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		return c, errors.New("localaws: Config.DataDir is required")
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.AccessKey == "" {
		c.AccessKey = "test"
	}
	if c.SecretKey == "" {
		c.SecretKey = "test"
	}
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Queue == "" {
		c.Queue = DefaultQueue
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.BodyGrace <= 0 {
		c.BodyGrace = DefaultBodyGrace
	}
	if c.BodyMinRate <= 0 {
		c.BodyMinRate = DefaultBodyMinRate
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Server is a running (or ready) localaws endpoint.
type Server struct {
	cfg      Config
	log      *slog.Logger
	verifier *sigv4.Verifier
	s3       *s3.Service
	sqs      *sqs.Service
	handler  http.Handler

	once lifecycle.Once

	mu       sync.Mutex
	url      string
	ln       net.Listener
	bgCancel context.CancelFunc
	bgDone   sync.WaitGroup
	closed   bool
}

// New opens the stores under cfg.DataDir and creates the default bucket,
// queues, CORS rule and notification configuration (idempotently: an
// unchanged notification configuration is not re-sent, so no new
// s3:TestEvent is queued on restart).
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("svc", "localaws"), url: "http://" + cfg.Addr}
	s.verifier = sigv4.NewVerifier(sigv4.Config{Credentials: map[string]string{cfg.AccessKey: cfg.SecretKey}, Region: cfg.Region})
	s.sqs, err = sqs.New(sqs.Config{DataDir: filepath.Join(cfg.DataDir, "sqs"), Region: cfg.Region, AccountID: DefaultAccountID, BaseURL: s.url, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("localaws: open sqs: %w", err)
	}
	s.s3, err = s3.New(s3.Config{DataDir: filepath.Join(cfg.DataDir, "s3"), Region: cfg.Region, AccountID: DefaultAccountID, Verifier: s.verifier, Notifier: s.sqs,
		AbortIncompleteAfter: cfg.AbortIncompleteAfter, Metrics: cfg.Metrics, Logger: cfg.Logger})
	if err != nil {
		s.sqs.Close()
		return nil, fmt.Errorf("localaws: open s3: %w", err)
	}
	s.handler = http.HandlerFunc(s.route)
	if err := s.createDefaults(context.Background()); err != nil {
		s.s3.Close()
		s.sqs.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) createDefaults(ctx context.Context) error {
	dlq := s.cfg.Queue + "-dlq"
	if _, err := s.sqs.CreateQueue(ctx, dlq, nil); err != nil {
		return fmt.Errorf("localaws: create queue %s: %w", dlq, err)
	}
	redrive := fmt.Sprintf(`{"deadLetterTargetArn":"%s","maxReceiveCount":"5"}`, s.sqs.QueueARN(dlq))
	if _, err := s.sqs.CreateQueue(ctx, s.cfg.Queue, map[string]string{"VisibilityTimeout": "30", "RedrivePolicy": redrive}); err != nil {
		// An operator may have changed the queue's attributes; keep them.
		s.log.Warn("default queue exists with other attributes; leaving it", "queue", s.cfg.Queue, "err", err)
	}
	if err := s.s3.EnsureBucket(s.cfg.Bucket); err != nil {
		return fmt.Errorf("localaws: create bucket %s: %w", s.cfg.Bucket, err)
	}
	if len(s.cfg.CORSOrigins) > 0 {
		maxAge := 3000
		rule := s3.CORSRule{ID: "herald-browser-uploads", AllowedOrigins: s.cfg.CORSOrigins, AllowedMethods: []string{"POST", "PUT", "GET", "HEAD"},
			AllowedHeaders: []string{"*"}, ExposeHeaders: []string{"ETag", "Location", "x-amz-request-id"}, MaxAgeSeconds: &maxAge}
		if err := s.s3.PutBucketCORS(s.cfg.Bucket, s3.CORSConfiguration{Rules: []s3.CORSRule{rule}}); err != nil {
			return fmt.Errorf("localaws: set CORS of %s: %w", s.cfg.Bucket, err)
		}
	}
	want := s.DefaultNotification()
	have, err := s.s3.BucketNotification(s.cfg.Bucket)
	if err != nil {
		return err
	}
	if have == nil && len(want.Queues) > 0 || have != nil && !reflect.DeepEqual(have.Queues, want.Queues) {
		if err := s.s3.PutBucketNotification(ctx, s.cfg.Bucket, want); err != nil {
			return fmt.Errorf("localaws: set notification of %s: %w", s.cfg.Bucket, err)
		}
	}
	return nil
}

// DefaultNotification is the notification configuration New gives the
// default bucket: one queue configuration per Config.Notify rule.
func (s *Server) DefaultNotification() s3.NotificationConfiguration {
	arn := s.sqs.QueueARN(s.cfg.Queue)
	var out s3.NotificationConfiguration
	for _, r := range s.cfg.Notify {
		q := s3.QueueConfig{ID: r.ID, QueueArn: arn, Events: []string{"s3:ObjectCreated:*"}, Filter: &s3.EventFilter{}}
		if r.Prefix != "" {
			q.Filter.Key.Rules = append(q.Filter.Key.Rules, s3.FilterRule{Name: "prefix", Value: r.Prefix})
		}
		if r.Suffix != "" {
			q.Filter.Key.Rules = append(q.Filter.Key.Rules, s3.FilterRule{Name: "suffix", Value: r.Suffix})
		}
		out.Queues = append(out.Queues, q)
	}
	return out
}

// S3 returns the S3 service (for wiring and tests).
func (s *Server) S3() *s3.Service { return s.s3 }

// SQS returns the SQS service (for wiring and tests).
func (s *Server) SQS() *sqs.Service { return s.sqs }

// Handler returns the routed, authenticating handler, e.g. for httptest.
// The first call starts the background work (notification redelivery,
// message expiry), which Close (or the end of Run) stops.
func (s *Server) Handler() http.Handler {
	s.startBackground()
	return s.handler
}

// SetBaseURL sets the scheme://host:port used in queue URLs; Listen sets it
// to the bound address, httptest users set it to the test server's URL.
func (s *Server) SetBaseURL(u string) {
	s.mu.Lock()
	s.url = u
	s.mu.Unlock()
	s.sqs.SetBaseURL(u)
}

// URL returns http://host:port of the server (the bound address after
// Listen).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

func (s *Server) startBackground() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bgCancel != nil || s.closed {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.bgCancel = cancel
	for _, run := range []func(context.Context) error{s.s3.Run, s.sqs.Run} {
		s.bgDone.Add(1)
		go func() {
			defer s.bgDone.Done()
			if err := run(ctx); err != nil {
				s.log.Error("localaws background task stopped", "err", err)
			}
		}()
	}
}

// Listen binds Config.Addr, so that URL reports the bound address (port 0
// picks a free one) before Run starts serving; Run listens itself if
// Listen was not called.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("localaws: listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.url = "http://" + reachableAddr(ln.Addr())
	s.sqs.SetBaseURL(s.url)
	return nil
}

// reachableAddr is host:port of a bound listener as a client on this machine
// dials it. A wildcard bind ("0.0.0.0:4566", which Go reports as
// "[::]:4566") is not an address anyone can connect to, and it ends up in
// presigned upload URLs that browsers open, so it becomes loopback.
func reachableAddr(a net.Addr) string {
	t, ok := a.(*net.TCPAddr)
	if !ok || !t.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(t.Port))
}

// Run serves until ctx ends, then lets requests in flight finish (up to
// 10 s), stops the background work and closes the stores. Run may be
// called once.
func (s *Server) Run(ctx context.Context) error {
	if err := s.once.Start("localaws"); err != nil {
		return err
	}
	if err := s.Listen(); err != nil {
		return errors.Join(err, s.Close())
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	srv := &http.Server{Handler: paceBodies(s.Handler(), s.cfg.BodyGrace, s.cfg.BodyMinRate),
		ReadHeaderTimeout: 30 * time.Second, IdleTimeout: s.cfg.IdleTimeout,
		ErrorLog: slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("localaws listening", "url", s.URL(), "bucket", s.cfg.Bucket, "queue", s.cfg.Queue)
	var err error
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if serr := srv.Shutdown(sctx); serr != nil {
			_ = srv.Close()
		}
		cancel()
		err = <-errc
	case err = <-errc:
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, s.Close())
}

// Close stops the background work and closes both stores (and a listener
// that Listen bound but Run never served). Run does this itself at its end;
// Close is for a Server used through Handler, or never run.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cancel := s.bgCancel
	ln := s.ln
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if ln != nil {
		_ = ln.Close() // Run's server has closed it already; harmless
	}
	s.bgDone.Wait()
	return errors.Join(s.s3.Close(), s.sqs.Close())
}
