package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/processor/convert"
)

// Publisher delivers a job event to its channel, QoS 1; final events are
// published retained. The processor needs nothing else of a broker, so any
// of the bridge's publishers (in-process or external) satisfies it.
type Publisher interface {
	Publish(ctx context.Context, e *event.Envelope) error
}

// DefaultVisibility is the default Config.Visibility: short, so a job whose
// processor crashed resumes within seconds, renewed every 3⅓ s while a step
// runs (a renewal that fails twice in a row is still in time).
const DefaultVisibility = 10 * time.Second

// DefaultPrefetch is Config.Prefetch's default.
const DefaultPrefetch = 64

// Config configures a [Processor]. Zero fields get the documented
// defaults.
type Config struct {
	// S3 reads inputs and writes outputs and markers; Presigner signs the
	// output URLs in job.completed. Queue and QueueURL are the event
	// queue, which also carries the job state messages. Required.
	S3        S3API
	Presigner Presigner
	Queue     Queue
	QueueURL  string
	// Bucket receives outputs and job markers. Required.
	Bucket string
	// Converter makes outputs. Required (typically a *convert.Engine).
	Converter convert.Converter
	// Pipelines route inputs to outputs; nil means
	// convert.DefaultPipelines(). Use the same list the Converter was
	// built with.
	Pipelines []convert.Pipeline
	// Publisher delivers job events. Required.
	Publisher Publisher
	// Apps gives each app's limits: its jobs-in-flight quota (a start
	// beyond it waits on the queue) and its conversion weight. Nil: no
	// quota, every app weighs the same.
	Apps Apps

	// Workers is how many messages (steps) are handled at once; default
	// 2 × Conversions, so that one step's downloads, uploads and queue
	// calls overlap another's conversion and the CPUs stay busy.
	Workers int
	// Conversions is how many converter runs (CPU-bound: libvips and
	// ffmpeg) go at once across all steps; default runtime.NumCPU(). An
	// app that holds none may run one more on a spare slot (at most
	// Conversions spares in all; see fairShare).
	Conversions int
	// Prefetch is how many received messages the processor holds at once,
	// running or waiting for a worker; default DefaultPrefetch (and at
	// least Workers). Workers and conversion slots go to the held steps by
	// fair share across apps and their sessions, not in arrival order, so
	// the window must reach past one app's backlog: with the default
	// maxJobsInFlight (10 jobs of up to 5 steps each) one app at its quota
	// fits in it. Each held message costs a visibility renewal every
	// Heartbeat, and is invisible to other processors.
	Prefetch int
	// MaxHold is how long a held message may wait for a worker; then it
	// goes back to the end of the queue (sent again, the original
	// deleted), for this or another processor. So a processor that holds
	// more than it can soon run does not keep work from idle ones.
	// Default 15 s.
	MaxHold time.Duration
	// MaxMessages is the most messages one receive asks for (1-10);
	// default 10.
	MaxMessages int
	// WaitTime is the long-poll wait of a receive; default 20 s.
	WaitTime time.Duration
	// Visibility is the visibility timeout a running step keeps renewing
	// on its message; default DefaultVisibility. After a crash the message
	// reappears at most this long after the last renewal, so it bounds how
	// long a crashed job waits before another processor resumes it.
	Visibility time.Duration
	// Heartbeat is how often the visibility is renewed; default
	// Visibility/3, at most Visibility/2.
	Heartbeat time.Duration
	// DrainTimeout bounds shutdown: steps still running after it are
	// canceled and their messages returned to the queue; default 30 s.
	DrainTimeout time.Duration
	// URLExpiry is how long the output URLs in job.completed work;
	// default 1 h.
	URLExpiry time.Duration
	// MarkerPrefix is where each job's final marker lives in Bucket:
	// {MarkerPrefix}{app}/{channel}/{jobId}/final.json; default
	// job.RecordsPrefix. (Outputs carry their own record as metadata.)
	// Nothing subscribes to it; a lifecycle rule may expire it after a day.
	MarkerPrefix string
	// WorkDir is the parent of per-step work dirs and of the input
	// cache; default the system temp dir.
	WorkDir string
	// InputCacheBytes bounds the local cache of downloaded inputs that
	// lets the output steps of a job running in this process share one
	// download; default 1 GiB, negative turns the cache off. Inputs larger
	// than a quarter of it are not kept: they are shared only while a step
	// of this process holds them (hard links, no extra space), so steps
	// running together still download them once. The cache lives in a directory
	// under WorkDir that Run removes when it returns.
	InputCacheBytes int64
	// OutputPartSize is the part size of outputs stored with a multipart
	// upload: an output this big or bigger goes in parts, two at a time,
	// read from its file (never buffered whole); default 16 MiB, at least
	// 5 MiB (S3's minimum part).
	OutputPartSize int64
	// Metrics registers the processor's metrics (herald_processor_*); nil
	// registers none.
	Metrics prometheus.Registerer
	// QueueSampleInterval is how often the queue's depth is read with
	// GetQueueAttributes for the herald_processor_queue_messages gauges
	// (and the redrive policy, to count messages left for the dead-letter
	// queue); default 15 s, negative turns sampling off.
	QueueSampleInterval time.Duration
	Logger              *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.S3 == nil || c.Presigner == nil || c.Queue == nil || c.QueueURL == "" || c.Bucket == "" || c.Converter == nil || c.Publisher == nil {
		return c, errors.New("processor: S3, Presigner, Queue, QueueURL, Bucket, Converter and Publisher are required")
	}
	if c.Pipelines == nil {
		c.Pipelines = convert.DefaultPipelines()
	}
	if c.Conversions <= 0 {
		c.Conversions = runtime.NumCPU()
	}
	if c.Workers <= 0 {
		c.Workers = 2 * c.Conversions
	}
	if c.Prefetch <= 0 {
		c.Prefetch = DefaultPrefetch
	}
	c.Prefetch = max(c.Prefetch, c.Workers)
	if c.MaxHold <= 0 {
		c.MaxHold = 15 * time.Second
	}
	if c.MaxMessages <= 0 || c.MaxMessages > 10 {
		c.MaxMessages = 10
	}
	if c.WaitTime <= 0 {
		c.WaitTime = 20 * time.Second
	}
	if c.Visibility <= 0 {
		c.Visibility = DefaultVisibility
	}
	c.Visibility = max(c.Visibility.Round(time.Second), time.Second)
	if c.Heartbeat <= 0 {
		c.Heartbeat = c.Visibility / 3
	}
	if c.Heartbeat > c.Visibility/2 {
		// A renewal that comes after the message reappeared lets another
		// processor run the same step at the same time.
		return c, fmt.Errorf("processor: Heartbeat %s must be at most half of Visibility %s", c.Heartbeat, c.Visibility)
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.URLExpiry <= 0 {
		c.URLExpiry = time.Hour
	}
	if c.InputCacheBytes == 0 {
		c.InputCacheBytes = 1 << 30
	}
	if c.OutputPartSize <= 0 {
		c.OutputPartSize = DefaultOutputPartSize
	}
	c.OutputPartSize = max(c.OutputPartSize, job.MinPartSize)
	if c.MarkerPrefix == "" {
		c.MarkerPrefix = job.RecordsPrefix
	}
	if c.QueueSampleInterval == 0 {
		c.QueueSampleInterval = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Processor consumes the event queue: S3 upload events, job state
// messages and external converters' manifests. See the package doc.
type Processor struct {
	cfg Config
	log *slog.Logger
	// workers and convs hand out the step workers and the conversion
	// slots by fair share across apps and sessions.
	workers, convs *fairShare
	// inputs is the input cache while Run runs; nil when turned off.
	inputs  *inputCache
	metrics *metrics
	records records
	// jobTurns serializes the fan-in of a job's steps in this process.
	jobTurns jobTurns
	// inflight counts and marks the jobs in flight of each app.
	inflight inFlight
	// siblings are the output steps running here, so a failing one stops
	// the rest of its job.
	siblings siblings
	// maxReceive is the queue's maxReceiveCount (0: no redrive policy
	// known); dlqURL and dlqARN are its dead-letter queue, used by the
	// sampler only.
	maxReceive     atomic.Int64
	dlqURL, dlqARN string
}

// New checks cfg and returns a Processor; Run starts it.
func New(cfg Config) (*Processor, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("processor metrics: %w", err)
	}
	weight := func(app string) int { return conversionWeight(cfg.Apps, app) }
	convs := newFairShare(cfg.Conversions, cfg.Conversions, weight)
	convs.changed = m.appConversions
	return &Processor{cfg: cfg, log: cfg.Logger, metrics: m,
		workers: newFairShare(cfg.Workers, max(1, cfg.Workers/2), weight), convs: convs,
		records:  records{s3: cfg.S3, bucket: cfg.Bucket, markerPrefix: cfg.MarkerPrefix},
		inflight: inFlight{s3: cfg.S3, bucket: cfg.Bucket, now: cfg.Now, log: cfg.Logger}}, nil
}

// Run receives and handles messages until ctx ends, then stops receiving
// and lets running steps finish for up to DrainTimeout; steps still
// running then are canceled and their messages made visible again, for
// this or another processor to redo. It returns nil after a drain.
func (p *Processor) Run(ctx context.Context) error {
	// Steps run on their own context so that shutdown first stops the
	// receiving and only later (after the drain deadline) the work.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	closeCache, err := p.openInputCache()
	if err != nil {
		return err
	}
	defer closeCache()
	var wg sync.WaitGroup
	p.startSampler(ctx, &wg)
	// received is closed once receiving has stopped: a message returned
	// to the queue before that could go straight into the last long poll
	// (canceled on our side, still open on the queue's for a moment).
	received := make(chan struct{})
	// slots bounds the messages held (running or waiting for a worker).
	slots := make(chan struct{}, p.cfg.Prefetch)
	p.log.Info("processor started", "queue", p.cfg.QueueURL, "workers", p.cfg.Workers, "conversions", p.cfg.Conversions,
		"prefetch", p.cfg.Prefetch)
	for backoff := time.Duration(0); ; {
		msgs, err := p.receive(ctx, slots)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			p.log.Warn("receive failed", "queue", p.cfg.QueueURL, "retry_in", backoff, "err", err)
			if sleep(ctx, backoff) != nil {
				break
			}
			continue
		}
		backoff = 0
		p.metrics.received.Add(float64(len(msgs)))
		for _, m := range msgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				p.handle(ctx, work, received, m)
			}()
		}
	}
	close(received)
	p.drain(&wg, stopWork)
	p.log.Info("processor stopped")
	return nil
}

// openInputCache opens the cache of downloaded inputs, if one is
// configured; the returned func removes it.
func (p *Processor) openInputCache() (closeCache func(), err error) {
	if p.cfg.InputCacheBytes <= 0 {
		return func() {}, nil
	}
	c, err := newInputCache(p.cfg.WorkDir, p.cfg.InputCacheBytes)
	if err != nil {
		return nil, err
	}
	p.inputs = c
	return func() {
		if err := c.close(); err != nil {
			p.log.Warn("input cache not removed", "err", err)
		}
	}, nil
}

// startSampler samples the queue's attributes until ctx ends, if asked to.
// The first sample is taken before any message is handled, so the
// redrive policy is known.
func (p *Processor) startSampler(ctx context.Context, wg *sync.WaitGroup) {
	if p.cfg.QueueSampleInterval <= 0 {
		return
	}
	if err := p.sampleOnce(ctx); err != nil {
		p.log.Warn("queue attributes not sampled", "queue", p.cfg.QueueURL, "err", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.sampleQueue(ctx)
	}()
}

// receive waits for a free worker slot, takes any further free ones (up to
// MaxMessages), and receives at most that many messages; it gives back the
// slots no message came for. An error after ctx ends is ctx's.
func (p *Processor) receive(ctx context.Context, slots chan struct{}) ([]types.Message, error) {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	n := 1
	for n < min(p.cfg.MaxMessages, p.cfg.Prefetch) && tryAcquire(slots) {
		n++
	}
	out, err := p.cfg.Queue.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(p.cfg.QueueURL), MaxNumberOfMessages: int32(n),
		WaitTimeSeconds: int32(p.cfg.WaitTime / time.Second),
		// Taken for Visibility on receipt (the queue's own timeout may
		// be shorter); the heartbeat renews it from there.
		VisibilityTimeout:           int32(p.cfg.Visibility / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
	})
	var msgs []types.Message
	if err == nil {
		msgs = out.Messages
	}
	for range n - len(msgs) {
		<-slots
	}
	return msgs, err
}

func tryAcquire(slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// sleep waits d, or returns ctx's error if it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain waits for the running steps up to DrainTimeout; then it cancels
// them (their messages return to the queue) and waits for them to return.
func (p *Processor) drain(wg *sync.WaitGroup, stopWork context.CancelFunc) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(p.cfg.DrainTimeout):
		p.log.Warn("drain deadline passed; canceling running steps, their messages return to the queue", "drain_timeout", p.cfg.DrainTimeout)
		stopWork()
		<-done
	}
}
