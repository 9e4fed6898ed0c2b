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
	// DefaultUploadsPerSecond bounds upload grants per app (a bucket of
	// ten seconds' worth, 200 grants, refilled at 20 a second).
	DefaultUploadsPerSecond = 20
	// DefaultSessionUploadsPerMinute bounds upload grants per browser
	// session (a bucket of ten seconds' worth, at least 1, refilled at one
	// a second): a page that adds twenty photos at once waits ten seconds
	// for the last ones, a script that asks for thousands is refused.
	DefaultSessionUploadsPerMinute = 60
	// DefaultMaxJobsInFlight bounds the jobs an app has started and not
	// yet finished.
	DefaultMaxJobsInFlight = 10
	// DefaultConversionWeight is an app's share of the conversion slots
	// relative to other apps with work waiting.
	DefaultConversionWeight = 1
	// DefaultMaxRetained and DefaultMaxRetainedBytes bound an app's
	// retained messages on the embedded broker (a final job event is
	// about 1 KiB).
	DefaultMaxRetained      = 10_000
	DefaultMaxRetainedBytes = 64 << 20
	// DefaultMaxQueued and DefaultMaxQueuedBytes bound the QoS 1
	// messages the embedded broker keeps for an app's persistent
	// sessions (waiting for an offline client or its acknowledgement).
	DefaultMaxQueued      = 100_000
	DefaultMaxQueuedBytes = 256 << 20
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

	// UploadsPerSecond bounds the upload grants (POST /v1/uploads, the
	// s3/params and s3/multipart create routes) of all the app's browsers
	// together, SessionUploadsPerMinute those of one browser session.
	// Each is a token bucket holding ten seconds' worth. Defaults
	// DefaultUploadsPerSecond and DefaultSessionUploadsPerMinute;
	// negative: no limit.
	UploadsPerSecond        float64 `yaml:"uploadsPerSecond"`
	SessionUploadsPerMinute float64 `yaml:"sessionUploadsPerMinute"`
	// MaxJobsInFlight bounds the app's jobs started and not yet finished.
	// At the bound new grants and job submissions are refused (429 with
	// Retry-After) and uploads that arrive anyway wait in the queue.
	// Default DefaultMaxJobsInFlight; negative: no limit.
	MaxJobsInFlight int `yaml:"maxJobsInFlight"`
	// ConversionWeight is the app's share of the processor's conversion
	// slots against other apps with work waiting (2 gets twice the slots
	// of 1). Default DefaultConversionWeight.
	ConversionWeight int `yaml:"conversionWeight"`
	// MaxRetained and MaxRetainedBytes bound the app's retained messages
	// on the embedded broker, MaxQueued and MaxQueuedBytes the QoS 1
	// messages it keeps for the app's persistent sessions. A publish
	// beyond a bound is refused (MQTT 5 PUBACK 0x97, 3.1.1 disconnect, 429
	// on POST /v1/events). Defaults DefaultMaxRetained,
	// DefaultMaxRetainedBytes, DefaultMaxQueued and DefaultMaxQueuedBytes;
	// negative: no limit.
	MaxRetained      int   `yaml:"maxRetained"`
	MaxRetainedBytes int64 `yaml:"maxRetainedBytes"`
	MaxQueued        int   `yaml:"maxQueued"`
	MaxQueuedBytes   int64 `yaml:"maxQueuedBytes"`
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
	if a.ConversionWeight <= 0 {
		a.ConversionWeight = DefaultConversionWeight
	}
	setDefault(&a.UploadsPerSecond, DefaultUploadsPerSecond)
	setDefault(&a.SessionUploadsPerMinute, DefaultSessionUploadsPerMinute)
	setDefault(&a.MaxJobsInFlight, DefaultMaxJobsInFlight)
	setDefault(&a.MaxRetained, DefaultMaxRetained)
	setDefault(&a.MaxRetainedBytes, DefaultMaxRetainedBytes)
	setDefault(&a.MaxQueued, DefaultMaxQueued)
	setDefault(&a.MaxQueuedBytes, DefaultMaxQueuedBytes)
}

// setDefault gives a zero limit its default; a negative one (no limit)
// stays.
func setDefault[T int | int64 | float64](v *T, d T) {
	if *v == 0 {
		*v = d
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
