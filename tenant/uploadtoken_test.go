package tenant

import (
	"errors"
	"testing"
	"time"
)

func TestUploadToken(t *testing.T) {
	r := testRegistry(t)
	now := time.Unix(1_800_000_000, 0)
	s, err := r.Mint("demo", now)
	if err != nil {
		t.Fatal(err)
	}
	claims := Claims{App: "demo", Channel: s.Channel}
	up, exp, err := r.MintUploadToken(claims, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := exp, now.Add(DefaultSessionTTL); !got.Equal(want) {
		t.Fatalf("expiry: got %v, want %v", got, want)
	}
	tests := []struct {
		name    string
		verify  func() (Claims, error)
		wantErr error
	}{
		{"upload token verifies", func() (Claims, error) { return r.VerifyUploadToken(up, now) }, nil},
		{"expired", func() (Claims, error) { return r.VerifyUploadToken(up, exp.Add(time.Second)) }, ErrExpired},
		{"tampered", func() (Claims, error) { return r.VerifyUploadToken(up[:len(up)-2]+"xx", now) }, ErrBadToken},
		{"garbage", func() (Claims, error) { return r.VerifyUploadToken("x.y.z", now) }, ErrBadToken},
		// A session token is not an upload token, and the other way round:
		// the upload token must never open the channel's MQTT connection.
		{"session token as upload token", func() (Claims, error) { return r.VerifyUploadToken(s.Token, now) }, ErrBadToken},
		{"upload token as session token", func() (Claims, error) { return r.Verify("demo", up, now) }, ErrBadToken},
		{"upload token as bearer session", func() (Claims, error) { return r.VerifyAny(up, now) }, ErrBadToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.verify()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got err %v, want %v", err, tt.wantErr)
			}
			if err == nil && got.Channel != s.Channel {
				t.Fatalf("channel: got %q, want %q", got.Channel, s.Channel)
			}
		})
	}
	if _, _, err := r.MintUploadToken(Claims{App: "demo", Channel: "short"}, now); !errors.Is(err, ErrBadToken) {
		t.Fatalf("mint for a non-channel: got %v, want ErrBadToken", err)
	}
}

func TestAllowedTypesValidated(t *testing.T) {
	for _, types := range [][]string{{"tiff"}, {"image/"}, {"/png"}, {"image/png; q=1"}} {
		a := App{ID: "x", APIKey: "0123456789abcdef", Secret: "0123456789abcdef0123456789abcdef", AllowedTypes: types}
		if err := a.validate(); err == nil {
			t.Errorf("allowed types %q: want an error", types)
		}
	}
}
