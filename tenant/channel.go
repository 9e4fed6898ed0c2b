package tenant

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// ChannelIDLen is the length of a channel id: 128 random bits, base64url.
const ChannelIDLen = 22

// NewChannelID returns a fresh 128-bit random, URL-safe channel id.
func NewChannelID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("channel id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ValidChannelID reports whether s has the shape of a channel id.
func ValidChannelID(s string) bool {
	if len(s) != ChannelIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func errorsIsExpired(err error) bool { return errors.Is(err, jwt.ErrTokenExpired) }
