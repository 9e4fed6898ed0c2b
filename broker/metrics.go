package broker

import (
	"fmt"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the broker's Prometheus collectors. They always exist so the
// hot paths never check for nil; they are registered only when the Config
// asks for it.
type metrics struct {
	connects          prometheus.Counter
	connectsRefused   *prometheus.CounterVec // by reason
	authFailures      *prometheus.CounterVec // by kind (browser, service)
	subscribeRefused  prometheus.Counter
	publishRefused    prometheus.Counter
	dropped           *prometheus.CounterVec // by reason
	backpressure      prometheus.Counter     // seconds publishers waited for congested connections
	disconnects       *prometheus.CounterVec // by reason
	transportRejected *prometheus.CounterVec // before MQTT: by reason
	wsProtocolErrors  *prometheus.CounterVec // epoll model: by close code
	wsReadPaused      prometheus.Counter     // epoll model: backpressure
	storageCommit     prometheus.Histogram   // one per group commit
	storageErrors     prometheus.Counter     // failed commits
	storageRefused    *prometheus.CounterVec // publishes refused while storage fails, by source
	sessionsEnded     *prometheus.CounterVec // by the server: token_expired, revoked
	reauth            *prometheus.CounterVec // MQTT 5 re-authentications, by result
}

func newMetrics() *metrics {
	const ns, sub = "herald", "broker"
	return &metrics{
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "connects_total",
			Help: "MQTT connects accepted (browsers and services).",
		}),
		connectsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "connects_refused_total",
			Help: "MQTT CONNECTs refused, by reason.",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "auth_failures_total",
			Help: "Failed authentications (bad token, key or app), by client kind.",
		}, []string{"kind"}),
		subscribeRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "subscribe_refusals_total",
			Help: "Subscription filters refused by the ACL (SUBACK 0x87).",
		}),
		publishRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "publish_refusals_total",
			Help: "Client publishes refused by the ACL.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "messages_dropped_total",
			Help: "Messages not delivered to a client, by reason: queue_full (a slow consumer, then disconnected).",
		}, []string{"reason"}),
		backpressure: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "publisher_wait_seconds_total",
			Help: "Time publishers were held back waiting for a congested client's write queue to drain (backpressure).",
		}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "disconnects_total",
			Help: "Client disconnects, by reason.",
		}, []string{"reason"}),
		transportRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "transport_rejected_total",
			Help: "Connections refused before any MQTT byte: origin, rate, capacity.",
		}, []string{"reason"}),
		wsProtocolErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "websocket_protocol_errors_total",
			Help: "WebSockets closed for a frame that breaks RFC 6455 or MQTT's use of it, by close code (1002 protocol, 1003 text frame, 1009 too big).",
		}, []string{"code"}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sessions_ended_total",
			Help: "Browser connections the server ended, by reason: token_expired (DISCONNECT 0xA0), revoked (0x98).",
		}, []string{"reason"}),
		reauth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "reauthentications_total",
			Help: "MQTT 5 re-authentications (AUTH 0x19) on open connections, by result: ok, expired_token, revoked, bad_token, protocol_error.",
		}, []string{"result"}),
		wsReadPaused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "websocket_read_paused_total",
			Help: "Times a WebSocket was left unread because its unread input reached 256 KiB (a client sending faster than the broker handles).",
		}),
		storageCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "storage_commit_seconds",
			Help:    "Duration of one storage commit (a batch of session and retained changes, fsynced).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		storageErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "storage_errors_total",
			Help: "Storage commits that failed (e.g. the disk is full); they are retried every second.",
		}),
		storageRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "storage_refused_total",
			Help: "Publishes refused because storage could not keep them, by source (api: the gateway's own publishes, mqtt: clients).",
		}, []string{"source"}),
	}
}

// register adds the collectors, plus gauges read straight from mochi's
// counters, to r.
func (m *metrics) register(r prometheus.Registerer, info *mqtt.Server, st *store) error {
	const ns, sub = "herald", "broker"
	in := info.Info
	cs := []prometheus.Collector{
		m.connects, m.connectsRefused, m.authFailures, m.subscribeRefused, m.publishRefused,
		m.dropped, m.backpressure, m.disconnects, m.transportRejected, m.wsProtocolErrors, m.wsReadPaused,
		m.storageCommit, m.storageErrors, m.storageRefused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "storage_ok",
			Help: "1 while storage writes succeed, 0 while they fail (new messages are refused and /readyz reports not ready).",
		}, func() float64 {
			if st.health() != nil {
				return 0
			}
			return 1
		}),
		m.sessionsEnded, m.reauth,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "connections",
			Help: "Connected MQTT clients.",
		}, func() float64 { return float64(atomic.LoadInt64(&in.ClientsConnected)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "sessions",
			Help: "Sessions known to the broker, connected or not.",
		}, func() float64 { return float64(info.Clients.Len()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "messages_in_total",
			Help: "PUBLISH packets received from clients.",
		}, func() float64 { return float64(atomic.LoadInt64(&in.MessagesReceived)) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "messages_out_total",
			Help: "PUBLISH packets written to clients.",
		}, func() float64 { return float64(atomic.LoadInt64(&in.MessagesSent)) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "session_dropped_total",
			Help: "QoS 1 messages not kept because a session already held MaxStored.",
		}, func() float64 { return float64(atomic.LoadInt64(&in.InflightDropped)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "retained_messages",
			Help: "Retained messages held.",
		}, func() float64 { return float64(info.Topics.Retained.Len()) }),
	}
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("register broker metrics: %w", err)
		}
	}
	return nil
}
