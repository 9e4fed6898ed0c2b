package web

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	apiErrors   *prometheus.CounterVec
	events      *prometheus.CounterVec
	sessions    prometheus.Counter
	refreshes   prometheus.Counter
	revocations prometheus.Counter
	limited     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_http_requests_total", Help: "API requests by endpoint and status.",
		}, []string{"endpoint", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_http_request_seconds", Help: "API request latency by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"endpoint"}),
		apiErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_http_errors_total", Help: "API errors by error code.",
		}, []string{"code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_events_published_total", Help: "Events accepted from services by app.",
		}, []string{"app"}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_sessions_refreshed_total", Help: "Browser session tokens renewed (POST /v1/sessions/refresh).",
		}),
		revocations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_sessions_revoked_total", Help: "Browser channels revoked (DELETE /v1/sessions/{channel}).",
		}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_http_limited_total",
			Help: "Requests refused by a per-app limit, by app and limit (session_uploads, app_uploads, or the quota's setting: maxJobsInFlight, maxRetained, …).",
		}, []string{"app", "limit"}),
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_sessions_minted_total", Help: "Browser sessions minted.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.apiErrors, m.events, m.sessions, m.refreshes, m.revocations, m.limited} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}
