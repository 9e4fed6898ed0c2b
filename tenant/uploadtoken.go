package tenant

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// uploadIssuer marks upload tokens. Session tokens are issued by "herald";
// Verify insists on that issuer, so an upload token never opens an MQTT
// connection or passes as a session token.
const uploadIssuer = "herald/uploads"

// MintUploadToken signs a token that lets its holder use the resumable
// upload routes for the session c and nothing else. It is carried in a
// URL path (an upload widget's endpoint, which cannot send headers), so it
// is a capability of its own rather than the session token, which also
// opens the channel's MQTT connection. It lasts the app's SessionTTL.
func (r *Registry) MintUploadToken(c Claims, now time.Time) (string, time.Time, error) {
	a, err := r.App(c.App)
	if err != nil {
		return "", time.Time{}, err
	}
	if !ValidChannelID(c.Channel) {
		return "", time.Time{}, fmt.Errorf("app %q: %q is not a channel id: %w", a.ID, c.Channel, ErrBadToken)
	}
	s, err := sign(a, c.Channel, uploadIssuer, now)
	if err != nil {
		return "", time.Time{}, err
	}
	return s.Token, s.ExpiresAt, nil
}

// VerifyUploadToken checks a token minted by MintUploadToken and returns
// the session it was minted for.
func (r *Registry) VerifyUploadToken(token string, now time.Time) (Claims, error) {
	var tc tokenClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &tc); err != nil || len(tc.Audience) != 1 {
		return Claims{}, fmt.Errorf("read upload token audience: %w", ErrBadToken)
	}
	a, err := r.App(tc.Audience[0])
	if errors.Is(err, ErrUnknownApp) {
		return Claims{}, fmt.Errorf("upload token for unknown app: %w", ErrBadToken)
	}
	if err != nil {
		return Claims{}, err
	}
	return r.verifyWith(a, token, uploadIssuer, now)
}
