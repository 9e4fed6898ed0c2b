// Package web serves Herald's HTTP API, the demo page, health and metrics,
// and mounts the broker's MQTT-over-WebSocket endpoint at /mqtt.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/tenant"
)

// Publisher delivers an event to its channel (bridge.Publisher satisfies it).
type Publisher interface {
	Publish(ctx context.Context, e *event.Envelope) error
}

// MaxJSONBody bounds the JSON bodies of the API other than events.
const MaxJSONBody = 16 << 10

// Config configures the HTTP server. Zero fields get the defaults noted.
type Config struct {
	// Registry holds the apps. Required.
	Registry *tenant.Registry
	// Publisher delivers /v1/events. Nil disables that endpoint (503).
	Publisher Publisher
	// MQTT serves GET /mqtt; nil when this process runs no broker.
	MQTT http.Handler
	// MQTTURL is the broker URL handed to browsers in POST /v1/sessions.
	// Empty means ws(s)://<request host>/mqtt.
	MQTTURL string
	// Sessions mints what a browser needs to connect to the broker in use.
	// Nil means the embedded broker: a signed token for MQTTURL.
	Sessions SessionMinter
	// Revoker backs DELETE /v1/sessions/{channel}; nil answers 503.
	Revoker Revoker
	// Uploads and Jobs back POST /v1/uploads and POST /v1/jobs; nil
	// answers 503 (no processor configured).
	Uploads Uploader
	Jobs    JobSubmitter
	// Multipart backs the resumable upload routes under /v1/uploads/s3;
	// nil answers 503.
	Multipart MultipartUploader
	// JobStatus backs GET /v1/jobs/{jobId}; nil answers 503.
	JobStatus JobReader
	// Ready reports readiness for /readyz; nil means always ready.
	Ready func(ctx context.Context) error
	// Gatherer serves /metrics; nil means prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// NoMetricsRoute leaves GET /metrics out: it is served on a listener
	// of its own, since its labels name the tenants.
	NoMetricsRoute bool
	// Metrics registers the API's own metrics; nil registers none.
	Metrics prometheus.Registerer
	// BodyTimeout bounds how long a request body may take to arrive;
	// default DefaultBodyTimeout.
	BodyTimeout time.Duration
	// SessionsPerMinutePerIP bounds anonymous session minting. Default 60.
	SessionsPerMinutePerIP float64
	Logger                 *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Server is the HTTP side of the gateway.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *routeMux
	metrics *metrics
	openapi []byte
	now     func() time.Time

	// Token buckets: anonymous sessions per client IP, events per app,
	// upload grants per session and per app.
	ipBuckets, eventBuckets, grantBuckets buckets
}

// New validates cfg and builds the routes.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil {
		return nil, errors.New("web: Config.Registry is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.SessionsPerMinutePerIP <= 0 {
		cfg.SessionsPerMinutePerIP = 60
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	doc, err := openAPIJSON()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, mux: &routeMux{ServeMux: http.NewServeMux()}, metrics: m, now: cfg.Now, openapi: doc,
	}
	s.routes()
	return s, nil
}

// Handler is the root handler of the gateway's HTTP server.
func (s *Server) Handler() http.Handler { return s.recoverer(s.bodyDeadline(s.cors(s.mux))) }

func (s *Server) routes() {
	s.mux.Handle("POST /v1/sessions", s.api("sessions", s.handleSessions))
	s.mux.Handle("POST /v1/sessions/refresh", s.api("sessions_refresh", s.handleRefresh))
	s.mux.Handle("DELETE /v1/sessions/{channel}", s.api("sessions_revoke", s.handleRevoke))
	s.mux.Handle("POST /v1/events", s.api("events", s.handleEvents))
	s.mux.Handle("POST /v1/uploads", s.api("uploads", s.handleUploads))
	s.uploadRoutes()
	s.mux.Handle("POST /v1/jobs", s.api("jobs", s.handleJobs))
	s.mux.Handle("GET /v1/jobs/{jobId}", s.api("job_status", s.handleJobStatus))
	s.mux.Handle("GET /v1/openapi.json", s.api("openapi", s.handleOpenAPI))
	s.mux.Handle("/v1/", s.api("unknown", func(w http.ResponseWriter, r *http.Request) error {
		return apiError(CodeNotFound, nil, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.Handle("GET /readyz", s.api("readyz", s.handleReady))
	if !s.cfg.NoMetricsRoute {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	if s.cfg.MQTT != nil {
		s.mux.Handle("GET /mqtt", s.cfg.MQTT)
	}
	s.mux.Handle("/", s.staticHandler())
}

// api adapts an error-returning handler: errors become the JSON error body,
// and every call is counted.
func (s *Server) api(name string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		if err := h(sw, r); err != nil {
			s.writeError(sw, r, err)
		}
		s.metrics.requests.WithLabelValues(name, fmt.Sprint(sw.status)).Inc()
		s.metrics.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			return apiError(CodeUnavailable, err, "not ready: %v", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// decodeJSON reads a small JSON body strictly into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeJSONMax(w, r, v, MaxJSONBody)
}

// decodeJSONMax reads a JSON body of at most limit bytes strictly into v.
func decodeJSONMax(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return apiError(CodeBadRequest, err, "request body is empty; JSON expected")
		}
		return apiError(CodeBadRequest, err, "malformed JSON: %v", err)
	}
	// One object and nothing after it: a body with more in it is a client
	// bug (or a smuggling attempt), never a second request.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		return apiError(CodeBadRequest, err, "trailing data after the JSON object")
	}
	return nil
}

// requireJSON refuses bodies declared as anything but JSON. Besides catching
// client mistakes, it keeps plain cross-site form posts (which browsers send
// without a CORS preflight) away from the API.
func requireJSON(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return apiError(CodeUnsupportedMedia, nil, "Content-Type must be application/json, got %q (curl: add -H 'Content-Type: application/json')", ct)
	}
	return nil
}

// bearer returns the token of an "Authorization: Bearer …" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "bearer ")
	}
	tok = strings.TrimSpace(tok)
	return tok, ok && tok != ""
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic serving %s: %v", r.URL.Path, v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// cors answers preflights and sets CORS headers on the API for origins some
// app allows, so an app's page on another origin can mint sessions and ask
// for uploads. /mqtt is not covered: WebSockets are not subject to CORS and
// the broker checks Origin itself.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !strings.HasPrefix(r.URL.Path, "/v1/") || !s.cfg.Registry.OriginAllowed(origin) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
