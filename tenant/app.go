// Package tenant holds the apps (tenants) of a gateway, the browser session
// tokens they sign, and the channel ids those tokens pin.
package tenant

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/heraldgw/herald/topic"
)

// Defaults for zero App fields.
const (
	DefaultSessionTTL     = 24 * time.Hour
	DefaultMaxUploadBytes = 200 << 20
	DefaultMaxObjectBytes = 5 << 30
	DefaultEventsPerSec   = 200
)

// Errors returned (wrapped) by the registry.
var (
	ErrUnknownApp = errors.New("unknown app")
	ErrBadAPIKey  = errors.New("bad api key")
	ErrBadToken   = errors.New("bad session token")
	ErrExpired    = errors.New("session token expired")
	ErrRevoked    = errors.New("session revoked")
	ErrAnonymous  = errors.New("app does not allow anonymous sessions")
)

// App is one tenant as configured.
type App struct {
	// ID names the app in topics and object keys ([A-Za-z0-9_.-]{1,64}).
	ID string `yaml:"id"`
	// APIKey authenticates the app's services (HTTP Bearer, MQTT password).
	APIKey string `yaml:"apiKey"`
	// Secret signs browser session tokens (HS256). At least 32 bytes.
	Secret string `yaml:"secret"`
	// Origins lists the web origins allowed to open /mqtt and upload
	// ("https://app.example.com"); "*" allows any (local demo only).
	Origins []string `yaml:"origins"`
	// AllowAnonymous lets POST /v1/sessions mint without the API key.
	AllowAnonymous bool `yaml:"allowAnonymous"`
	// SessionTTL is how long a browser token stays valid, so MQTT.js can
	// reconnect without a new HTTP call. Default 24h.
	SessionTTL time.Duration `yaml:"sessionTTL"`
	// MaxUploadBytes bounds a file sent in one request (POST /v1/uploads,
	// GET /v1/uploads/s3/params). Default 200 MiB.
	MaxUploadBytes int64 `yaml:"maxUploadBytes"`
	// MaxObjectBytes bounds a file sent in parts (the resumable
	// /v1/uploads/s3/multipart routes). Default 5 GiB.
	MaxObjectBytes int64 `yaml:"maxObjectBytes"`
	// AllowedTypes narrows the content types the app's browsers may
	// upload: exact types ("image/tiff") or a family ("audio/*"). Empty
	// allows every type a pipeline converts.
	AllowedTypes []string `yaml:"allowedTypes"`
	// EventsPerSecond bounds POST /v1/events for the app. Default 200.
	EventsPerSecond float64 `yaml:"eventsPerSecond"`
}

func (a *App) setDefaults() {
	if a.SessionTTL <= 0 {
		a.SessionTTL = DefaultSessionTTL
	}
	if a.MaxUploadBytes <= 0 {
		a.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if a.MaxObjectBytes <= 0 {
		a.MaxObjectBytes = DefaultMaxObjectBytes
	}
	if a.EventsPerSecond <= 0 {
		a.EventsPerSecond = DefaultEventsPerSec
	}
}

func (a *App) validate() error {
	switch {
	case !topic.ValidSegment(a.ID):
		return fmt.Errorf("app id %q: must be 1-64 of [A-Za-z0-9_.-]", a.ID)
	case len(a.APIKey) < 16:
		return fmt.Errorf("app %q: apiKey must be at least 16 characters", a.ID)
	case len(a.Secret) < 32:
		return fmt.Errorf("app %q: secret must be at least 32 characters", a.ID)
	}
	for _, t := range a.AllowedTypes {
		if major, minor, ok := strings.Cut(t, "/"); !ok || major == "" || minor == "" || strings.ContainsAny(t, " ;,") {
			return fmt.Errorf("app %q: allowed type %q must look like image/tiff or image/*", a.ID, t)
		}
	}
	for _, o := range a.Origins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			return fmt.Errorf("app %q: origin %q must look like https://host[:port]", a.ID, o)
		}
	}
	return nil
}

// AllowsOrigin reports whether a browser page from origin may use this app.
// An empty origin (non-browser client) is allowed: origin checks defend
// browsers against cross-site use, not services.
func (a *App) AllowsOrigin(origin string) bool {
	if origin == "" {
		return true
	}
	for _, o := range a.Origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// CheckAPIKey compares key with the app's API key in constant time.
func (a *App) CheckAPIKey(key string) error {
	if subtle.ConstantTimeCompare([]byte(key), []byte(a.APIKey)) != 1 {
		return fmt.Errorf("app %q: %w", a.ID, ErrBadAPIKey)
	}
	return nil
}
