package processor

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Job outcomes, the outcome label of herald_processor_jobs_total.
const (
	outcomeAccepted  = "accepted"
	outcomeCompleted = "completed"
	outcomeFailed    = "failed"
)

// metrics are the processor's Prometheus metrics. Counts are of events the
// processor published or messages it handled; a repeated step (after a
// crash or a lost delete) can count twice, as the events it publishes are
// at least once too.
type metrics struct {
	jobs        *prometheus.CounterVec
	failures    *prometheus.CounterVec
	jobSeconds  *prometheus.HistogramVec
	convSeconds *prometheus.HistogramVec
	convCPU     *prometheus.CounterVec
	running     prometheus.Gauge
	waiting     prometheus.Gauge
	received    prometheus.Counter
	deleted     prometheus.Counter
	redriven    prometheus.Counter
	queue       *prometheus.GaugeVec
	quotaWaits  *prometheus.CounterVec
	byApp       *prometheus.GaugeVec
	requeued    prometheus.Counter
}

// jobBuckets span a thumbnail (well under a second) to an hour-long audio
// file.
var jobBuckets = []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_processor_jobs_total",
			Help: "Jobs by app, pipeline and outcome: accepted (job.accepted published), completed or failed (final event published).",
		}, []string{"app", "pipeline", "outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_processor_job_failures_total",
			Help: "Failed jobs by app, pipeline and the failure code of their job.failed event (pipeline \"none\" when no pipeline took the input).",
		}, []string{"app", "pipeline", "code"}),
		jobSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_processor_job_duration_seconds",
			Help:    "Time from the upload's S3 event (or the job's submission) to its job.completed or job.failed, by pipeline and outcome.",
			Buckets: jobBuckets,
		}, []string{"pipeline", "outcome"}),
		convSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_processor_conversion_duration_seconds",
			Help:    "Wall time of one output's conversion (not counting the wait for a slot), by converter and outcome (ok, failed, canceled).",
			Buckets: jobBuckets,
		}, []string{"converter", "outcome"}),
		convCPU: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_processor_converter_cpu_seconds_total",
			Help: "CPU time (user and system) used by converter processes, by converter.",
		}, []string{"converter"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_processor_conversions_running",
			Help: "Conversions running now.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_processor_conversions_waiting",
			Help: "Output steps waiting for a conversion slot.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_processor_sqs_messages_received_total",
			Help: "Messages received from the job queue.",
		}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_processor_sqs_messages_deleted_total",
			Help: "Messages deleted from the job queue once their step was done.",
		}),
		redriven: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_processor_sqs_messages_redriven_total",
			Help: "Messages left undeleted on their last receive before the queue's redrive policy (maxReceiveCount) moves them to the dead-letter queue.",
		}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_processor_queue_messages",
			Help: "Approximate messages in the job queue (queue=\"main\") and its dead-letter queue (queue=\"dead_letter\") by state (visible, in_flight, delayed), sampled with GetQueueAttributes.",
		}, []string{"queue", "state"}),
		byApp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_processor_app_conversions",
			Help: "Conversions by app and state: running (holding a slot) or waiting for one.",
		}, []string{"app", "state"}),
		requeued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_processor_sqs_messages_requeued_total",
			Help: "Held messages sent back to the end of the queue after waiting maxHold for a worker.",
		}),
		quotaWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_processor_quota_waits_total",
			Help: "Job starts put back on the queue to wait because their app was at its maxJobsInFlight, by app.",
		}, []string{"app"}),
	}
	if reg == nil {
		return m, nil
	}
	return m, m.register(reg)
}

// register registers m's collectors on reg. A second processor on the
// same registry (tests, or one process running two) shares the first
// one's collectors.
func (m *metrics) register(reg prometheus.Registerer) error {
	var err error
	register := func(c prometheus.Collector) prometheus.Collector {
		if err != nil {
			return c
		}
		if e := reg.Register(c); e != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(e, &are) {
				return are.ExistingCollector
			}
			err = e
		}
		return c
	}
	m.jobs = register(m.jobs).(*prometheus.CounterVec)
	m.failures = register(m.failures).(*prometheus.CounterVec)
	m.jobSeconds = register(m.jobSeconds).(*prometheus.HistogramVec)
	m.convSeconds = register(m.convSeconds).(*prometheus.HistogramVec)
	m.convCPU = register(m.convCPU).(*prometheus.CounterVec)
	m.running = register(m.running).(prometheus.Gauge)
	m.waiting = register(m.waiting).(prometheus.Gauge)
	m.received = register(m.received).(prometheus.Counter)
	m.deleted = register(m.deleted).(prometheus.Counter)
	m.redriven = register(m.redriven).(prometheus.Counter)
	m.queue = register(m.queue).(*prometheus.GaugeVec)
	m.quotaWaits = register(m.quotaWaits).(*prometheus.CounterVec)
	m.byApp = register(m.byApp).(*prometheus.GaugeVec)
	m.requeued = register(m.requeued).(prometheus.Counter)
	return err
}

// jobEnded counts a job's final event.
func (m *metrics) jobEnded(app, pipeline, outcome, code string, since time.Time, now time.Time) {
	if pipeline == "" {
		pipeline = "none"
	}
	m.jobs.WithLabelValues(app, pipeline, outcome).Inc()
	if outcome == outcomeFailed {
		m.failures.WithLabelValues(app, pipeline, code).Inc()
	}
	if !since.IsZero() {
		m.jobSeconds.WithLabelValues(pipeline, outcome).Observe(max(now.Sub(since), 0).Seconds())
	}
}

// appConversions sets an app's conversions running and waiting.
func (m *metrics) appConversions(app string, running, waiting int) {
	m.byApp.WithLabelValues(app, "running").Set(float64(running))
	m.byApp.WithLabelValues(app, "waiting").Set(float64(waiting))
}
