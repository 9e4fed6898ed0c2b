package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/broker"
	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/localaws"
	"github.com/heraldgw/herald/processor/convert"
	"github.com/heraldgw/herald/tenant"
)

const (
	testApp    = "demo"
	testAPIKey = "demo-api-key-0123456789"
)

// env is a processor wired to real localaws over HTTP and a real embedded
// broker, with a real MQTT subscriber on the app's topics.
type env struct {
	aws      *localaws.Server
	s3       *s3.Client
	sqs      *sqs.Client
	queueURL string
	dlqURL   string
	intake   *Intake
	proc     *Processor
	events   *recorder
	logs     *testkit.Logs
	metrics  *prometheus.Registry
	channel  string
	stop     func()
}

type envOpt func(*Config)

func requireTools(t testing.TB) {
	t.Helper()
	testkit.RequireTools(t, "vips", "vipsheader", "ffmpeg", "ffprobe", "prlimit")
}

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	requireTools(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logs := &testkit.Logs{}
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(logs, testWriter(t)), &slog.HandlerOptions{Level: slog.LevelDebug}))

	srv, err := localaws.New(localaws.Config{Notify: []localaws.NotifyRule{
		{ID: "herald-uploads", Prefix: job.UploadsPrefix},
		{ID: "herald-manifests", Prefix: job.ConvertedPrefix, Suffix: job.ManifestName},
	}, Addr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, srv.Run)
	ac := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), BaseEndpoint: aws.String(srv.URL())}
	e := &env{aws: srv, logs: logs}
	e.s3 = s3.NewFromConfig(ac, func(o *s3.Options) { o.UsePathStyle = true })
	e.sqs = sqs.NewFromConfig(ac)
	e.queueURL = queueURL(t, e.sqs, localaws.DefaultQueue)
	e.dlqURL = queueURL(t, e.sqs, localaws.DefaultQueue+"-dlq")

	reg, err := tenant.NewRegistry([]tenant.App{{ID: testApp, APIKey: testAPIKey, Secret: strings.Repeat("s", 32), Origins: []string{"*"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Registry: reg, TCPAddr: "127.0.0.1:0", ConnectRatePerIP: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	bdone := make(chan error, 1)
	bctx, bcancel := context.WithCancel(context.Background())
	go func() { bdone <- b.Run(bctx) }()
	t.Cleanup(func() { bcancel(); <-bdone })
	testkit.WaitFor(t, 10*time.Second, "broker ready", b.Ready)
	e.events = subscribe(t, b.TCPAddr().String(), "apps/"+testApp+"/#")
	if e.channel, err = tenant.NewChannelID(); err != nil {
		t.Fatal(err)
	}

	presign := s3.NewPresignClient(e.s3)
	e.metrics = prometheus.NewRegistry()
	cfg := Config{
		S3: e.s3, Presigner: presign, Queue: e.sqs, QueueURL: e.queueURL, Bucket: localaws.DefaultBucket,
		Publisher: bridge.NewEmbedded(b), Logger: log, Metrics: e.metrics, QueueSampleInterval: 250 * time.Millisecond,
		WaitTime: 2 * time.Second, Visibility: 5 * time.Second, Heartbeat: time.Second, DrainTimeout: 10 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	// The converter is built from the pipelines the options chose.
	eng, err := convert.New(ctx, convert.Config{Pipelines: cfg.Pipelines}, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Converter = eng
	if e.intake, err = NewIntake(IntakeConfig{S3: e.s3, Presigner: presign, Queue: e.sqs, QueueURL: e.queueURL, Bucket: localaws.DefaultBucket,
		Pipelines: cfg.Pipelines, Logger: log}); err != nil {
		t.Fatal(err)
	}
	if e.proc, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	pdone := make(chan error, 1)
	go func() { pdone <- e.proc.Run(pctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			pcancel()
			if err := <-pdone; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(e.stop)
	return e
}

func queueURL(t testing.TB, c *sqs.Client, name string) string {
	t.Helper()
	out, err := c.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

// testWriter sends logs to t.Log when -v is given.
func testWriter(t testing.TB) io.Writer {
	if !testing.Verbose() {
		return io.Discard
	}
	return writerFunc(func(p []byte) (int, error) { t.Log(strings.TrimSpace(string(p))); return len(p), nil })
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// recorder collects job events received over MQTT, deduplicated by id.
type recorder struct {
	mu     sync.Mutex
	byJob  map[string][]event.Envelope
	seen   map[string]int
	at     map[string]time.Time // event id → first receive time
	notify chan struct{}
}

func subscribe(t testing.TB, addr, filter string) *recorder {
	t.Helper()
	r := &recorder{byJob: map[string][]event.Envelope{}, seen: map[string]int{}, at: map[string]time.Time{}, notify: make(chan struct{}, 1)}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			r.add(pr.Packet.Payload)
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "svc-test", KeepAlive: 60, CleanStart: true,
		Username: testApp, UsernameFlag: true, Password: []byte(testAPIKey), PasswordFlag: true}); err != nil {
		t.Fatalf("connect subscriber: %v", err)
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return r
}

func (r *recorder) add(payload []byte) {
	var e event.Envelope
	if json.Unmarshal(payload, &e) != nil {
		return
	}
	r.mu.Lock()
	r.seen[e.ID]++
	if r.seen[e.ID] == 1 {
		r.byJob[e.JobID] = append(r.byJob[e.JobID], e)
		r.at[e.ID] = time.Now()
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// final waits for the job's job.completed or job.failed and returns all of
// its distinct events so far.
func (r *recorder) final(t testing.TB, jobID string, within time.Duration) (event.Envelope, []event.Envelope) {
	t.Helper()
	deadline := time.After(within)
	for {
		r.mu.Lock()
		evs := append([]event.Envelope(nil), r.byJob[jobID]...)
		r.mu.Unlock()
		for _, e := range evs {
			if e.Final() {
				return e, evs
			}
		}
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("job %s: no final event within %v; got %+v", jobID, within, evs)
		}
	}
}

func (r *recorder) receivedAt(id string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at[id]
}

// upload asks the intake for a grant and sends the file as a browser
// does: multipart/form-data, the grant's fields first, the file last.
func (e *env) upload(t testing.TB, filename, contentType string, data []byte) string {
	t.Helper()
	g, err := e.intake.GrantUpload(context.Background(), job.UploadRequest{App: testApp, Channel: e.channel, Filename: filename,
		ContentType: contentType, Size: int64(len(data)), MaxBytes: 200 << 20})
	if err != nil {
		t.Fatalf("GrantUpload(%s, %s): %v", filename, contentType, err)
	}
	if resp, body := (testkit.Upload{URL: g.URL, Fields: g.Fields, Filename: filename, Data: data}).MustPost(t); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST %s: %d %s", g.URL, resp.StatusCode, body)
	}
	return g.JobID
}

// putUpload stores data under an upload key directly (as a service with
// S3 access would), bypassing the grant's checks.
func (e *env) putUpload(t testing.TB, filename string, data []byte) string {
	t.Helper()
	jobID, err := job.NewID()
	if err != nil {
		t.Fatal(err)
	}
	key := job.Key{App: testApp, Channel: e.channel, JobID: jobID}.UploadKey(filename)
	if _, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(localaws.DefaultBucket), Key: aws.String(key),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))}); err != nil {
		t.Fatal(err)
	}
	return jobID
}

// checkOutputs fetches every output through its presigned URL, as the
// browser would, and checks type and size.
func checkOutputs(t testing.TB, e event.Envelope) {
	t.Helper()
	if len(e.Outputs) == 0 {
		t.Fatalf("job %s completed without outputs", e.JobID)
	}
	for _, o := range e.Outputs {
		resp, err := http.Get(o.URL)
		if err != nil {
			t.Fatalf("GET %s: %v", o.Key, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode != http.StatusOK:
			t.Errorf("GET %s: status %d", o.Key, resp.StatusCode)
		case resp.Header.Get("Content-Type") != o.ContentType:
			t.Errorf("%s: Content-Type %q, event says %q", o.Key, resp.Header.Get("Content-Type"), o.ContentType)
		case int64(len(b)) != o.Bytes || o.Bytes == 0:
			t.Errorf("%s: %d bytes, event says %d", o.Key, len(b), o.Bytes)
		}
	}
}
