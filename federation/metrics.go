package federation

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the federation's collectors; they always exist and are
// registered only when Config.Metrics is set.
type metrics struct {
	received     prometheus.Counter
	dropped      prometheus.Counter
	subscribes   prometheus.Counter
	unsubscribes prometheus.Counter

	revocationsSent     prometheus.Counter
	revocationsReceived prometheus.Counter
}

func newMetrics() *metrics {
	const ns, sub = "herald", "federation"
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	return &metrics{
		received:     c("received_total", "Upstream events republished into the embedded broker."),
		dropped:      c("dropped_total", "Upstream messages not republished (not a channel topic, or the embedded broker refused)."),
		subscribes:   c("subscribes_total", "Channel filters subscribed upstream (including resubscribes after reconnect)."),
		unsubscribes: c("unsubscribes_total", "Channel filters unsubscribed upstream after their grace period."),

		revocationsSent:     c("revocations_sent_total", "Session revocations announced to the other replicas."),
		revocationsReceived: c("revocations_received_total", "Session revocations received from the upstream broker (own ones included)."),
	}
}

func (m *metrics) register(r prometheus.Registerer, f *Federation) error {
	const ns, sub = "herald", "federation"
	cs := []prometheus.Collector{
		m.received, m.dropped, m.subscribes, m.unsubscribes, m.revocationsSent, m.revocationsReceived,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "channels",
			Help: "Channels followed on the upstream broker."}, func() float64 { return float64(f.Channels()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "upstream_up",
			Help: "1 while the upstream connection is up."}, func() float64 {
			if f.up.Load() {
				return 1
			}
			return 0
		}),
	}
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("federation metrics: %w", err)
		}
	}
	return nil
}
