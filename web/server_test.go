package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/tenant"
)

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	reg, err := tenant.NewRegistry([]tenant.App{
		{ID: "demo", APIKey: "demo-key-0123456789", Secret: strings.Repeat("s", 32), Origins: []string{"https://app.example"}, AllowAnonymous: true},
		{ID: "closed", APIKey: "closed-key-0123456789", Secret: strings.Repeat("c", 32)},
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, method, url string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestSessionsAndErrors(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		name     string
		method   string
		path     string
		hdr      map[string]string
		body     string
		wantCode int
		wantErr  Code
	}{
		{"anonymous demo", "POST", "/v1/sessions", nil, `{"app":"demo"}`, 201, ""},
		{"closed app without key", "POST", "/v1/sessions", nil, `{"app":"closed"}`, 401, CodeUnauthorized},
		{"closed app with key", "POST", "/v1/sessions", map[string]string{"Authorization": "Bearer closed-key-0123456789"}, `{"app":"closed"}`, 201, ""},
		{"wrong content type", "POST", "/v1/sessions", map[string]string{"Content-Type": "text/plain"}, `{"app":"demo"}`, 415, CodeUnsupportedMedia},
		{"unknown field", "POST", "/v1/sessions", nil, `{"app":"demo","x":1}`, 400, CodeBadRequest},
		{"empty body", "POST", "/v1/sessions", nil, ``, 400, CodeBadRequest},
		{"allowed origin", "POST", "/v1/sessions", map[string]string{"Origin": "https://app.example"}, `{"app":"demo"}`, 201, ""},
		{"foreign origin", "POST", "/v1/sessions", map[string]string{"Origin": "https://evil.example"}, `{"app":"demo"}`, 403, CodeForbidden},
		{"events as a form post", "POST", "/v1/events", map[string]string{"Authorization": "Bearer demo-key-0123456789", "Content-Type": "application/x-www-form-urlencoded"}, `{}`, 415, CodeUnsupportedMedia},
		{"events without publisher", "POST", "/v1/events", map[string]string{"Authorization": "Bearer demo-key-0123456789"}, `{}`, 503, CodeUnavailable},
		{"uploads without token", "POST", "/v1/uploads", nil, `{}`, 401, CodeUnauthorized},
		{"uploads with bad token", "POST", "/v1/uploads", map[string]string{"Authorization": "Bearer x.y.z"}, `{"filename":"a.png","contentType":"image/png","size":1}`, 401, CodeUnauthorized},
		// One JSON object per body, like /v1/events: whatever follows it
		// is refused before anything is checked or granted.
		{"uploads with trailing object", "POST", "/v1/uploads", map[string]string{"Authorization": "Bearer x.y.z"}, `{"filename":"a.png","contentType":"image/png","size":1}{"size":2}`, 400, CodeBadRequest},
		{"uploads with trailing brace", "POST", "/v1/uploads", map[string]string{"Authorization": "Bearer x.y.z"}, `{"filename":"a.png","contentType":"image/png","size":1}}`, 400, CodeBadRequest},
		{"sessions with trailing data", "POST", "/v1/sessions", nil, `{"app":"demo"} x`, 400, CodeBadRequest},
		{"sessions with trailing newline", "POST", "/v1/sessions", nil, "{\"app\":\"demo\"}\n", 201, ""},
		{"jobs without key", "POST", "/v1/jobs", nil, `{}`, 401, CodeUnauthorized},
		{"jobs on another app's upload", "POST", "/v1/jobs", map[string]string{"Authorization": "Bearer demo-key-0123456789"}, `{"channel":"AAAAAAAAAAAAAAAAAAAAAA","bucket":"herald","key":"uploads/closed/c/j/a.png"}`, 403, CodeForbidden},
		{"jobs on another app's output", "POST", "/v1/jobs", map[string]string{"Authorization": "Bearer demo-key-0123456789"}, `{"channel":"AAAAAAAAAAAAAAAAAAAAAA","bucket":"herald","key":"converted/closed/c/j/t.webp"}`, 403, CodeForbidden},
		{"jobs on own upload without processor", "POST", "/v1/jobs", map[string]string{"Authorization": "Bearer demo-key-0123456789"}, `{"channel":"AAAAAAAAAAAAAAAAAAAAAA","bucket":"herald","key":"uploads/demo/c/j/a.png"}`, 503, CodeUnavailable},
		{"wrong method", "GET", "/v1/sessions", nil, ``, 404, CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, ts.URL+tt.path, tt.hdr, tt.body)
			var e errorBody
			_ = json.Unmarshal([]byte(body), &e)
			if resp.StatusCode != tt.wantCode || e.Error.Code != tt.wantErr {
				t.Fatalf("got %d %s, want %d %q", resp.StatusCode, body, tt.wantCode, tt.wantErr)
			}
		})
	}
}

func TestCORSPreflight(t *testing.T) {
	ts := newTestServer(t)
	resp, _ := do(t, "OPTIONS", ts.URL+"/v1/uploads", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}, "")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("allowed preflight: got %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do(t, "OPTIONS", ts.URL+"/v1/uploads", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, "")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign preflight got CORS headers: %v", resp.Header)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want Code
	}{
		{fmt.Errorf("x: %w", tenant.ErrExpired), CodeTokenExpired},
		{fmt.Errorf("x: %w", tenant.ErrBadToken), CodeUnauthorized},
		{tenant.ErrBadAPIKey, CodeUnauthorized},
		{fmt.Errorf("decode: %w", event.ErrInvalid), CodeInvalidEvent},
		{&http.MaxBytesError{Limit: 10}, CodeTooLarge},
		{&Error{Code: CodeRateLimited}, CodeRateLimited},
		{errors.New("boom"), CodeInternal},
	}
	for _, tt := range tests {
		if got := classify(tt.err).Code; got != tt.want {
			t.Errorf("classify(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	for _, c := range []Code{CodeBadRequest, CodeUnauthorized, CodeForbidden, CodeNotFound, CodeTooLarge, CodeRateLimited, CodeUnavailable, CodeInternal} {
		if s := statusOf(c); s < 400 || s > 599 {
			t.Errorf("statusOf(%q) = %d, want 4xx/5xx", c, s)
		}
	}
}
