package tenant

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Registry is the immutable set of configured apps. It is safe for
// concurrent use.
type Registry struct {
	apps    map[string]*App
	ids     []string
	revoked Revocations
}

// Revocations tells which channels' tokens are no longer accepted
// (DELETE /v1/sessions/{channel}), whatever their expiry says.
type Revocations interface {
	Revoked(app, channel string, now time.Time) bool
}

// Option configures a Registry.
type Option func(*Registry)

// WithRevocations makes Verify (and so every check of a session token)
// refuse the tokens of channels rv reports revoked, with ErrRevoked.
func WithRevocations(rv Revocations) Option {
	return func(r *Registry) { r.revoked = rv }
}

// NewRegistry validates apps, fills their defaults and indexes them by id.
func NewRegistry(apps []App, opts ...Option) (*Registry, error) {
	r := &Registry{apps: make(map[string]*App, len(apps))}
	for _, o := range opts {
		o(r)
	}
	for i := range apps {
		a := apps[i]
		a.setDefaults()
		if err := a.validate(); err != nil {
			return nil, err
		}
		if _, dup := r.apps[a.ID]; dup {
			return nil, fmt.Errorf("app %q configured twice", a.ID)
		}
		r.apps[a.ID] = &a
		r.ids = append(r.ids, a.ID)
	}
	return r, nil
}

// App returns the app with id.
func (r *Registry) App(id string) (*App, error) {
	a, ok := r.apps[id]
	if !ok {
		return nil, fmt.Errorf("app %q: %w", id, ErrUnknownApp)
	}
	return a, nil
}

// IDs lists the app ids in configuration order.
func (r *Registry) IDs() []string { return append([]string(nil), r.ids...) }

// Authenticate checks a service's API key for app id.
func (r *Registry) Authenticate(id, key string) (*App, error) {
	a, err := r.App(id)
	if err != nil {
		return nil, err
	}
	return a, a.CheckAPIKey(key)
}

// OriginAllowed reports whether any app allows origin.
func (r *Registry) OriginAllowed(origin string) bool {
	for _, a := range r.apps {
		if a.AllowsOrigin(origin) {
			return true
		}
	}
	return false
}

// Session is a freshly minted browser session.
type Session struct {
	App       string
	Channel   string
	Token     string
	ExpiresAt time.Time
}

// Claims is what a valid session token proves.
type Claims struct {
	App       string
	Channel   string
	ExpiresAt time.Time
}

// tokenClaims is the JWT body: "sub" is the channel, "aud" the app.
type tokenClaims struct {
	jwt.RegisteredClaims
}

// Mint creates a new channel for app and signs a token for it.
func (r *Registry) Mint(appID string, now time.Time) (Session, error) {
	a, err := r.App(appID)
	if err != nil {
		return Session{}, err
	}
	ch, err := NewChannelID()
	if err != nil {
		return Session{}, err
	}
	return sign(a, ch, sessionIssuer, now)
}

// Renew signs a new token for the channel of c, valid for the app's
// SessionTTL from now: the session goes on, same channel, same persistent
// MQTT session. c must come from Verify (so it is neither expired nor
// revoked).
func (r *Registry) Renew(c Claims, now time.Time) (Session, error) {
	a, err := r.App(c.App)
	if err != nil {
		return Session{}, err
	}
	if !ValidChannelID(c.Channel) {
		return Session{}, fmt.Errorf("app %q: renew %q: %w", a.ID, c.Channel, ErrBadToken)
	}
	return sign(a, c.Channel, sessionIssuer, now)
}

// sessionIssuer marks session tokens.
const sessionIssuer = "herald"

// sign signs a token of issuer iss for channel ch of app a, valid for the
// app's SessionTTL from now.
func sign(a *App, ch, iss string, now time.Time) (Session, error) {
	exp := now.Add(a.SessionTTL).Truncate(time.Second)
	// A random token id makes every token distinct: a refresh within the same
	// second as the mint would otherwise sign the very same claims again.
	id, err := NewChannelID()
	if err != nil {
		return Session{}, fmt.Errorf("sign token for app %q: %w", a.ID, err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, tokenClaims{jwt.RegisteredClaims{
		ID:        id,
		Subject:   ch,
		Audience:  jwt.ClaimStrings{a.ID},
		Issuer:    iss,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}})
	s, err := tok.SignedString([]byte(a.Secret))
	if err != nil {
		return Session{}, fmt.Errorf("sign token for app %q: %w", a.ID, err)
	}
	return Session{App: a.ID, Channel: ch, Token: s, ExpiresAt: exp}, nil
}

// Verify checks a token that claims to belong to appID and returns its
// claims. The app is given by the caller (MQTT username, HTTP request) and the
// token must be signed with that app's secret and name it as audience.
func (r *Registry) Verify(appID, token string, now time.Time) (Claims, error) {
	a, err := r.App(appID)
	if err != nil {
		return Claims{}, err
	}
	return r.verifyWith(a, token, sessionIssuer, now)
}

// verifyWith checks token against app a's secret, its id as audience and
// issuer iss, and that its channel is not revoked; it returns its claims.
func (r *Registry) verifyWith(a *App, token, iss string, now time.Time) (Claims, error) {
	var tc tokenClaims
	_, err := jwt.ParseWithClaims(token, &tc, func(*jwt.Token) (any, error) { return []byte(a.Secret), nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(a.ID),
		jwt.WithIssuer(iss),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	switch {
	case err == nil:
	case errorsIsExpired(err):
		return Claims{}, fmt.Errorf("app %q: %w", a.ID, ErrExpired)
	default:
		return Claims{}, fmt.Errorf("app %q: %w: %w", a.ID, ErrBadToken, err)
	}
	if !ValidChannelID(tc.Subject) {
		return Claims{}, fmt.Errorf("app %q: token subject is not a channel id: %w", a.ID, ErrBadToken)
	}
	if r.revoked != nil && r.revoked.Revoked(a.ID, tc.Subject, now) {
		return Claims{}, fmt.Errorf("app %q channel %s: %w", a.ID, tc.Subject, ErrRevoked)
	}
	return Claims{App: a.ID, Channel: tc.Subject, ExpiresAt: tc.ExpiresAt.Time}, nil
}

// AuthenticateKey finds the app whose API key is key. Every app's key is
// compared, in constant time, so timing does not reveal which app matched.
func (r *Registry) AuthenticateKey(key string) (*App, error) {
	var found *App
	for _, id := range r.ids {
		a := r.apps[id]
		if a.CheckAPIKey(key) == nil {
			found = a
		}
	}
	if found == nil || key == "" {
		return nil, ErrBadAPIKey
	}
	return found, nil
}

// VerifyAny checks a token whose app is not otherwise known (an HTTP Bearer
// session token): the app is read from the unverified audience, then the
// token is verified with that app's secret exactly as Verify does.
func (r *Registry) VerifyAny(token string, now time.Time) (Claims, error) {
	var tc tokenClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &tc); err != nil || len(tc.Audience) != 1 {
		return Claims{}, fmt.Errorf("read token audience: %w", ErrBadToken)
	}
	c, err := r.Verify(tc.Audience[0], token, now)
	if errors.Is(err, ErrUnknownApp) {
		return Claims{}, fmt.Errorf("token for unknown app: %w", ErrBadToken)
	}
	return c, err
}
