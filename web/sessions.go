package web

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/topic"
)

// SessionMinter completes a freshly minted session with the broker details a
// browser needs. External brokers (AWS IoT Core) hand out presigned URLs; the
// embedded broker needs only its URL.
type SessionMinter interface {
	MQTTFor(ctx context.Context, s tenant.Session, r *http.Request) (tenant.MQTTInfo, error)
}

type sessionRequest struct {
	App string `json:"app"`
}

type sessionResponse struct {
	App       string          `json:"app"`
	Channel   string          `json:"channel"`
	ClientID  string          `json:"clientId"`
	Topic     string          `json:"topic"`
	Token     string          `json:"token"`
	ExpiresAt time.Time       `json:"expiresAt"`
	MQTT      tenant.MQTTInfo `json:"mqtt"`
}

func (s *Server) handleSessions(w http.ResponseWriter, r *http.Request) error {
	var req sessionRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.App == "" {
		return apiError(CodeBadRequest, nil, `"app" is required`)
	}
	app, err := s.cfg.Registry.App(req.App)
	if err != nil {
		return apiError(CodeNotFound, err, "unknown app %q", req.App)
	}
	if err := allowOrigin(app, r); err != nil {
		return err
	}
	if key, ok := bearer(r); ok {
		if err := app.CheckAPIKey(key); err != nil {
			return err
		}
	} else if !app.AllowAnonymous {
		return tenant.ErrAnonymous
	} else if !s.allowSession(r) {
		return apiError(CodeRateLimited, nil, "too many sessions from this address; retry later")
	}
	sess, err := s.cfg.Registry.Mint(app.ID, s.now())
	if err != nil {
		return err
	}
	info, err := s.mqttInfo(r, sess)
	if err != nil {
		return err
	}
	s.metrics.sessions.Inc()
	writeJSON(w, http.StatusCreated, newSessionResponse(sess, info))
	return nil
}

func newSessionResponse(sess tenant.Session, info tenant.MQTTInfo) sessionResponse {
	return sessionResponse{
		App: sess.App, Channel: sess.Channel, ClientID: sess.Channel,
		Topic: topic.ChannelFilter(sess.App, sess.Channel), Token: sess.Token,
		ExpiresAt: sess.ExpiresAt.UTC(), MQTT: info,
	}
}

// Revoker ends a channel's browser sessions: from now until until its
// tokens are refused everywhere (every replica, also after a restart), and
// its live connection is closed. It returns once that is durable.
type Revoker interface {
	Revoke(ctx context.Context, app, channel string, until time.Time) error
}

// handleRefresh renews a live session: the Bearer token, not yet expired
// nor revoked, buys a new one for the same channel (so the same MQTT client
// id and persistent session), with the broker details minted afresh (an
// external broker's presigned URL expires too). The body, if any, is
// ignored.
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) error {
	claims, _, err := s.bearerSession(r)
	if err != nil {
		return err
	}
	sess, err := s.cfg.Registry.Renew(claims, s.now())
	if err != nil {
		return err
	}
	info, err := s.mqttInfo(r, sess)
	if err != nil {
		return err
	}
	s.metrics.refreshes.Inc()
	writeJSON(w, http.StatusOK, newSessionResponse(sess, info))
	return nil
}

// handleRevoke revokes a channel of the caller's app (API key). The tokens
// it may hold all expire within the app's sessionTTL from now (a refresh
// needs a valid token, which revocation ends), so that is how long the
// revocation lasts.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) error {
	app, err := s.serviceApp(r)
	if err != nil {
		return err
	}
	ch := r.PathValue("channel")
	if !tenant.ValidChannelID(ch) {
		return apiError(CodeBadRequest, nil, "%q is not a channel id", ch)
	}
	if s.cfg.Revoker == nil {
		return apiError(CodeUnavailable, nil, "session revocation is not configured on this gateway")
	}
	if err := s.cfg.Revoker.Revoke(r.Context(), app.ID, ch, s.now().Add(app.SessionTTL)); err != nil {
		return apiError(CodeUnavailable, err, "channel %s could not be revoked everywhere; retry (revoking again is harmless)", ch)
	}
	s.metrics.revocations.Inc()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) mqttInfo(r *http.Request, sess tenant.Session) (tenant.MQTTInfo, error) {
	if s.cfg.Sessions != nil {
		return s.cfg.Sessions.MQTTFor(r.Context(), sess, r)
	}
	url := s.cfg.MQTTURL
	if url == "" {
		scheme := "ws"
		if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
			scheme = "wss"
		}
		url = scheme + "://" + r.Host + "/mqtt"
	}
	return tenant.MQTTInfo{URL: url, ProtocolVersion: 5}, nil
}
