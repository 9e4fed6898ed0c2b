package web

import (
	"errors"
	"net/http"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/tenant"
)

// serviceApp authenticates an app's service by its API key (Bearer).
func (s *Server) serviceApp(r *http.Request) (*tenant.App, error) {
	key, ok := bearer(r)
	if !ok {
		return nil, apiError(CodeUnauthorized, nil, "Authorization: Bearer <app api key> is required")
	}
	return s.cfg.Registry.AuthenticateKey(key)
}

type acceptedEvent struct {
	ID    string `json:"id"`
	Topic string `json:"topic"`
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	app, err := s.serviceApp(r)
	if err != nil {
		return err
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	if s.cfg.Publisher == nil {
		return apiError(CodeUnavailable, nil, "this gateway has no publisher configured")
	}
	if !s.appLimiter(app.ID, app.EventsPerSecond).AllowN(s.now(), 1) {
		return apiError(CodeRateLimited, nil, "app %q exceeds %.0f events/s", app.ID, app.EventsPerSecond)
	}
	e, err := event.DecodeForApp(http.MaxBytesReader(w, r.Body, event.MaxBytes), app.ID, s.now())
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return mbe
		}
		return err
	}
	if err := s.cfg.Publisher.Publish(r.Context(), e); err != nil {
		if errors.Is(err, tenant.ErrQuota) {
			return err // 429 quota_exceeded, with Retry-After
		}
		return apiError(CodeUnavailable, err, "could not publish event %s", e.ID)
	}
	s.metrics.events.WithLabelValues(app.ID).Inc()
	writeJSON(w, http.StatusAccepted, acceptedEvent{ID: e.ID, Topic: e.Topic()})
	return nil
}
