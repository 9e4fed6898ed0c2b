package bridge

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// mqttMetrics are the external publisher's collectors. They always exist so
// the hot paths never check for nil; they are registered only when
// MQTTConfig.Metrics is set.
type mqttMetrics struct {
	published prometheus.Counter
	rejected  prometheus.Counter
	retried   prometheus.Counter
	queueFull prometheus.Counter
	latency   prometheus.Histogram
}

func newMQTTMetrics() *mqttMetrics {
	const ns, sub = "herald", "bridge"
	return &mqttMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "published_total",
			Help: "Events acknowledged by the external broker (PUBACK success).",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "rejected_total",
			Help: "Events the external broker refused for good (PUBACK reason >= 0x80); they are dropped.",
		}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "retries_total",
			Help: "Publish attempts that got no acknowledgement (connection lost, timeout, throttled) and were queued again.",
		}),
		queueFull: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "queue_full_total",
			Help: "Publish calls refused because the outbound queue was full (ErrQueueFull).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "delivery_seconds",
			Help:    "Time from taking a queued event to its PUBACK.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
	}
}

func (m *mqttMetrics) register(r prometheus.Registerer, name string, b *MQTT) error {
	labels := prometheus.Labels{"bridge": name}
	wrapped := prometheus.WrapRegistererWith(labels, r)
	const ns, sub = "herald", "bridge"
	cs := []prometheus.Collector{
		m.published, m.rejected, m.retried, m.queueFull, m.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "queued",
			Help: "Events waiting for the external broker's acknowledgement (on disk when a queue dir is set).",
		}, func() float64 { return float64(b.Queued()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "connections_up",
			Help: "Connections to the external broker that are up.",
		}, func() float64 { return float64(b.connectionsUp()) }),
	}
	for _, c := range cs {
		if err := wrapped.Register(c); err != nil {
			return fmt.Errorf("bridge %s metrics: %w", name, err)
		}
	}
	return nil
}
