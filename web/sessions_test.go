package web

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldgw/herald/revocation"
	"github.com/heraldgw/herald/tenant"
)

// storeRevoker revokes in a revocation.Store, as the gateway does before it
// closes connections and tells other replicas.
type storeRevoker struct{ s *revocation.Store }

func (r storeRevoker) Revoke(_ context.Context, app, channel string, until time.Time) error {
	_, err := r.s.Revoke(revocation.Record{App: app, Channel: channel, Until: until})
	return err
}

// clock is a settable time for the server under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestRefreshAndRevoke(t *testing.T) {
	store, _ := revocation.Open("", nil)
	reg, err := tenant.NewRegistry([]tenant.App{
		{ID: "demo", APIKey: "demo-key-0123456789", Secret: strings.Repeat("s", 32), Origins: []string{"https://app.example"},
			AllowAnonymous: true, SessionTTL: time.Hour},
		{ID: "other", APIKey: "other-key-0123456789", Secret: strings.Repeat("o", 32)},
	}, tenant.WithRevocations(store))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	srv, err := New(Config{Registry: reg, Revoker: storeRevoker{store}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	session := func(code int, body string) sessionResponse {
		t.Helper()
		var s sessionResponse
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatalf("%d %s: %v", code, body, err)
		}
		return s
	}
	errCode := func(body string) Code {
		var e errorBody
		_ = json.Unmarshal([]byte(body), &e)
		return e.Error.Code
	}

	resp, body := do(t, "POST", ts.URL+"/v1/sessions", nil, `{"app":"demo"}`)
	first := session(resp.StatusCode, body)

	// 50 minutes into a 1 h token: refresh gives the same channel a new
	// token that lasts an hour from now.
	clk.add(50 * time.Minute)
	resp, body = do(t, "POST", ts.URL+"/v1/sessions/refresh", bearer(first.Token), "")
	if resp.StatusCode != 200 {
		t.Fatalf("refresh: %d %s", resp.StatusCode, body)
	}
	second := session(resp.StatusCode, body)
	if second.Channel != first.Channel || second.ClientID != first.Channel || second.Topic != first.Topic ||
		second.Token == first.Token || !second.ExpiresAt.After(first.ExpiresAt) || second.MQTT.URL == "" {
		t.Fatalf("refreshed session %+v, first %+v", second, first)
	}
	// Past the first token's expiry: it is refused, the new one works.
	clk.add(20 * time.Minute)
	if resp, body := do(t, "POST", ts.URL+"/v1/sessions/refresh", bearer(first.Token), ""); resp.StatusCode != 401 || errCode(body) != CodeTokenExpired {
		t.Fatalf("refresh with an expired token: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", ts.URL+"/v1/sessions/refresh", bearer(second.Token), "")
	if resp.StatusCode != 200 {
		t.Fatalf("refresh with the refreshed token: %d %s", resp.StatusCode, body)
	}
	third := session(resp.StatusCode, body)

	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		wantStatus         int
		wantCode           Code
	}{
		{"refresh without token", "POST", "/v1/sessions/refresh", nil, 401, CodeUnauthorized},
		{"refresh with garbage", "POST", "/v1/sessions/refresh", bearer("x.y.z"), 401, CodeUnauthorized},
		{"refresh with an api key", "POST", "/v1/sessions/refresh", bearer("demo-key-0123456789"), 401, CodeUnauthorized},
		{"refresh from a foreign origin", "POST", "/v1/sessions/refresh", map[string]string{"Authorization": "Bearer " + third.Token, "Origin": "https://evil.example"}, 403, CodeForbidden},
		{"revoke without key", "DELETE", "/v1/sessions/" + first.Channel, nil, 401, CodeUnauthorized},
		{"revoke with a session token", "DELETE", "/v1/sessions/" + first.Channel, bearer(third.Token), 401, CodeUnauthorized},
		{"revoke a non-channel", "DELETE", "/v1/sessions/nope", bearer("demo-key-0123456789"), 400, CodeBadRequest},
		// Another app's key revokes only within that app: the demo
		// channel stays usable (checked below).
		{"revoke by another app", "DELETE", "/v1/sessions/" + first.Channel, bearer("other-key-0123456789"), 204, ""},
		{"still refreshable", "POST", "/v1/sessions/refresh", bearer(third.Token), 200, ""},
		{"revoke", "DELETE", "/v1/sessions/" + first.Channel, bearer("demo-key-0123456789"), 204, ""},
		{"revoke again", "DELETE", "/v1/sessions/" + first.Channel, bearer("demo-key-0123456789"), 204, ""},
		{"refresh after revoke", "POST", "/v1/sessions/refresh", bearer(third.Token), 401, CodeTokenRevoked},
		{"upload after revoke", "POST", "/v1/uploads", bearer(third.Token), 401, CodeTokenRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := ""
			if tc.path == "/v1/uploads" {
				body = `{"filename":"a.png","contentType":"image/png","size":1}`
			}
			resp, got := do(t, tc.method, ts.URL+tc.path, tc.hdr, body)
			if resp.StatusCode != tc.wantStatus || (tc.wantCode != "" && errCode(got) != tc.wantCode) {
				t.Fatalf("got %d %s, want %d %q", resp.StatusCode, got, tc.wantStatus, tc.wantCode)
			}
		})
	}
	// The revocation lasts the app's sessionTTL from when it was made.
	if !store.Revoked("demo", first.Channel, clk.now().Add(59*time.Minute)) || store.Revoked("demo", first.Channel, clk.now().Add(61*time.Minute)) {
		t.Error("revocation does not last exactly the app's sessionTTL")
	}

	noRevoker, _ := New(Config{Registry: reg})
	ts2 := httptest.NewServer(noRevoker.Handler())
	t.Cleanup(ts2.Close)
	if resp, body := do(t, "DELETE", ts2.URL+"/v1/sessions/"+first.Channel, bearer("demo-key-0123456789"), ""); resp.StatusCode != 503 {
		t.Errorf("revoke without a revoker: %d %s", resp.StatusCode, body)
	}
}
