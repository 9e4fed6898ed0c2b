package tenant

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func testRegistry(t *testing.T) *Registry {
	t.Helper()
	r, err := NewRegistry([]App{
		{ID: "demo", APIKey: "demo-key-0123456789", Secret: strings.Repeat("s", 32), Origins: []string{"http://localhost:8080"}},
		{ID: "other", APIKey: "other-key-0123456789", Secret: strings.Repeat("o", 32)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMintVerify(t *testing.T) {
	r := testRegistry(t)
	now := time.Unix(1_800_000_000, 0)
	s, err := r.Mint("demo", now)
	if err != nil {
		t.Fatal(err)
	}
	if !ValidChannelID(s.Channel) {
		t.Fatalf("channel %q is not a channel id", s.Channel)
	}
	other, _ := r.Mint("other", now)
	tests := []struct {
		name    string
		app     string
		token   string
		at      time.Time
		wantErr error
	}{
		{"valid", "demo", s.Token, now, nil},
		{"valid just before expiry", "demo", s.Token, s.ExpiresAt.Add(-time.Second), nil},
		{"expired", "demo", s.Token, s.ExpiresAt.Add(time.Second), ErrExpired},
		{"other app's token", "demo", other.Token, now, ErrBadToken},
		{"token presented for other app", "other", s.Token, now, ErrBadToken},
		{"garbage", "demo", "not-a-jwt", now, ErrBadToken},
		{"tampered", "demo", s.Token[:len(s.Token)-2] + "xx", now, ErrBadToken},
		{"unknown app", "nope", s.Token, now, ErrUnknownApp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := r.Verify(tt.app, tt.token, tt.at)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify: got err %v, want %v", err, tt.wantErr)
			}
			if err == nil && (c.Channel != s.Channel || c.App != "demo") {
				t.Fatalf("claims: got %+v, want channel %s app demo", c, s.Channel)
			}
		})
	}
}

func TestAlgNoneRefused(t *testing.T) {
	r := testRegistry(t)
	// header {"alg":"none","typ":"JWT"}, body with sub/aud/iss/exp far ahead.
	tok := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJBQUFBQUFBQUFBQUFBQUFBQUFBQUFBIiwiYXVkIjpbImRlbW8iXSwiaXNzIjoiaGVyYWxkIiwiZXhwIjo0MTAyNDQ0ODAwfQ."
	if _, err := r.Verify("demo", tok, time.Now()); !errors.Is(err, ErrBadToken) {
		t.Fatalf("alg none: got %v, want ErrBadToken", err)
	}
}

func TestAPIKeyAndOrigin(t *testing.T) {
	r := testRegistry(t)
	if _, err := r.Authenticate("demo", "demo-key-0123456789"); err != nil {
		t.Fatalf("good key: %v", err)
	}
	if _, err := r.Authenticate("demo", "other-key-0123456789"); !errors.Is(err, ErrBadAPIKey) {
		t.Fatalf("bad key: got %v", err)
	}
	a, _ := r.App("demo")
	for origin, want := range map[string]bool{"": true, "http://localhost:8080": true, "http://evil.example": false} {
		if got := a.AllowsOrigin(origin); got != want {
			t.Errorf("AllowsOrigin(%q) = %v, want %v", origin, got, want)
		}
	}
}

func TestNewRegistryRejects(t *testing.T) {
	good := App{ID: "a", APIKey: "k123456789012345", Secret: strings.Repeat("x", 32)}
	tests := []struct {
		name string
		mod  func(*App)
	}{
		{"bad id", func(a *App) { a.ID = "a/b" }},
		{"short key", func(a *App) { a.APIKey = "k" }},
		{"short secret", func(a *App) { a.Secret = "s" }},
		{"bad origin", func(a *App) { a.Origins = []string{"localhost"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := good
			tt.mod(&a)
			if _, err := NewRegistry([]App{a}); err == nil {
				t.Fatal("NewRegistry succeeded, want error")
			}
		})
	}
}

// revokedSet is a Revocations for tests: a plain set with expiries.
type revokedSet map[string]time.Time

func (s revokedSet) Revoked(app, channel string, now time.Time) bool {
	until, ok := s[app+"/"+channel]
	return ok && now.Before(until)
}

// TestRenewAndRevoke: Renew keeps the channel and moves the expiry; a
// revoked channel's tokens, old and renewed, fail Verify with ErrRevoked
// until the revocation ends.
func TestRenewAndRevoke(t *testing.T) {
	revoked := revokedSet{}
	r, err := NewRegistry([]App{{ID: "demo", APIKey: "demo-key-0123456789", Secret: strings.Repeat("s", 32), SessionTTL: time.Hour}},
		WithRevocations(revoked))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	s, _ := r.Mint("demo", now)
	c, err := r.Verify("demo", s.Token, now.Add(50*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	later := now.Add(50 * time.Minute)
	n, err := r.Renew(c, later)
	if err != nil {
		t.Fatal(err)
	}
	if n.Channel != s.Channel || n.App != "demo" || !n.ExpiresAt.Equal(later.Add(time.Hour)) || n.Token == s.Token {
		t.Fatalf("renewed: got %+v, old %+v", n, s)
	}
	if _, err := r.Verify("demo", n.Token, now.Add(90*time.Minute)); err != nil {
		t.Fatalf("renewed token past the old expiry: %v", err)
	}
	up, _, err := r.MintUploadToken(c, later)
	if err != nil {
		t.Fatal(err)
	}
	revoked["demo/"+s.Channel] = later.Add(time.Hour)
	if _, err := r.VerifyUploadToken(up, later); !errors.Is(err, ErrRevoked) {
		t.Errorf("upload token of a revoked channel: got %v, want ErrRevoked", err)
	}
	for _, tok := range []string{s.Token, n.Token} {
		if _, err := r.Verify("demo", tok, later); !errors.Is(err, ErrRevoked) {
			t.Errorf("revoked channel: got %v, want ErrRevoked", err)
		}
		if _, err := r.VerifyAny(tok, later); !errors.Is(err, ErrRevoked) {
			t.Errorf("revoked channel (VerifyAny): got %v, want ErrRevoked", err)
		}
	}
	other, _ := r.Mint("demo", later)
	if _, err := r.Verify("demo", other.Token, later); err != nil {
		t.Errorf("another channel: %v", err)
	}
	if _, err := r.Renew(Claims{App: "demo", Channel: "x"}, later); !errors.Is(err, ErrBadToken) {
		t.Errorf("renew of a non-channel: got %v", err)
	}
}

// TestRenewInTheSameSecondIsANewToken: a refresh right after minting (same
// second, same expiry) still hands out a token of its own.
func TestRenewInTheSameSecondIsANewToken(t *testing.T) {
	r, err := NewRegistry([]App{{ID: "demo", APIKey: "demo-key-0123456789", Secret: strings.Repeat("s", 32), SessionTTL: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	s, _ := r.Mint("demo", now)
	c, err := r.Verify("demo", s.Token, now)
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.Renew(c, now)
	if err != nil {
		t.Fatal(err)
	}
	if n.Token == s.Token {
		t.Fatal("renewed token is the minted token")
	}
	if _, err := r.Verify("demo", n.Token, now); err != nil {
		t.Fatalf("renewed token: %v", err)
	}
}
