package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	validatorErrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/web"
)

// apiCase is one real request to a running gateway. wantValid says whether
// the request itself conforms to the document (requests built to be refused
// do not); the response must conform either way.
type apiCase struct {
	name       string
	method     string
	path       string
	bearer     string
	header     map[string]string
	body       string
	wantStatus int
	wantValid  bool
}

// TestOpenAPIMatchesGateway sends real requests to a whole gateway and checks
// every request and response against web/openapi.yaml with
// libopenapi-validator. The document's objects are closed
// (additionalProperties: false), so a field the server sends that the
// document does not declare fails here. Routes added to /v1 get cases here.
func TestOpenAPIMatchesGateway(t *testing.T) {
	doc, err := libopenapi.NewDocument(web.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	g := startGateway(t, t.TempDir())
	s := g.newSession(t)
	png := testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "x.png", 64, 48))
	jobID, channel := uploadFile(t, g.base, "pic.png", "image/png", png)
	uploaded := fmt.Sprintf("uploads/demo/%s/%s/pic.png", channel, jobID)
	// The job's status is asked for once it completed, so its answer has
	// outputs to check.
	waitJobState(t, g.base, jobID, "completed")
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	// A resumable upload with one part, for the Companion-style routes.
	up := companion{base: g.base + "/v1/uploads", bearer: s.Token}.create(t, "clip.wav", "audio/wav")
	part := companion{base: g.base + "/v1/uploads", bearer: s.Token}.putPart(t, up, 1, testkit.ReadFile(t, testkit.Audio(t, t.TempDir(), "clip.wav", 1)))
	var ep struct {
		CompanionEndpoint string `json:"companionEndpoint"`
	}
	resp, body := postJSON(t, g.base+"/v1/uploads/endpoint", s.Token, nil)
	_ = json.Unmarshal(body, &ep)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload endpoint: %d %s", resp.StatusCode, body)
	}
	tokenBase := strings.TrimPrefix(ep.CompanionEndpoint, g.base)

	cases := []apiCase{
		{"session anonymous", "POST", "/v1/sessions", "", nil, `{"app":"demo"}`, 201, true},
		{"session with key", "POST", "/v1/sessions", testAPIKey, nil, `{"app":"demo"}`, 201, true},
		{"session unknown field", "POST", "/v1/sessions", "", nil, `{"app":"demo","x":1}`, 400, false},
		{"session malformed", "POST", "/v1/sessions", "", nil, `{"app":`, 400, false},
		{"session unknown app", "POST", "/v1/sessions", "", nil, `{"app":"nope"}`, 404, true},
		{"session wrong key", "POST", "/v1/sessions", "wrong-key", nil, `{"app":"demo"}`, 401, true},
		{"session foreign origin", "POST", "/v1/sessions", "", map[string]string{"Origin": "https://evil.example"}, `{"app":"demo"}`, 403, true},
		{"session not json", "POST", "/v1/sessions", "", map[string]string{"Content-Type": "text/plain"}, `app=demo`, 415, false},
		{"event x", "POST", "/v1/events", testAPIKey, nil, js(map[string]any{"v": 1, "type": "x.hello", "id": "evt_oa1", "channel": s.Channel, "seq": 1, "data": map[string]int{"hi": 1}}), 202, true},
		{"event job", "POST", "/v1/events", testAPIKey, nil, js(map[string]any{"v": 1, "type": "job.completed", "id": "evt_oa2", "jobId": "j1", "channel": s.Channel, "seq": 3, "time": "2026-11-23T18:00:00Z",
			"outputs": []map[string]any{{"name": "report", "key": "converted/demo/x/j1/report.pdf", "contentType": "application/pdf", "bytes": 52311}}}), 202, true},
		{"event unknown field", "POST", "/v1/events", testAPIKey, nil, js(map[string]any{"v": 1, "type": "x.hello", "id": "evt_oa3", "channel": s.Channel, "color": "red"}), 400, false},
		{"event bad type", "POST", "/v1/events", testAPIKey, nil, js(map[string]any{"v": 1, "type": "hello", "id": "evt_oa4", "channel": s.Channel}), 400, false},
		{"event no key", "POST", "/v1/events", "", nil, js(map[string]any{"v": 1, "type": "x.hello", "id": "evt_oa5", "channel": s.Channel}), 401, false},
		{"upload", "POST", "/v1/uploads", s.Token, nil, `{"filename":"photo.tif","contentType":"image/tiff","size":1534020}`, 201, true},
		{"upload empty size", "POST", "/v1/uploads", s.Token, nil, `{"filename":"photo.tif","size":0}`, 400, false},
		{"upload too large", "POST", "/v1/uploads", s.Token, nil, `{"filename":"big.tif","size":1099511627776}`, 413, true},
		{"upload bad token", "POST", "/v1/uploads", "not-a-token", nil, `{"filename":"photo.tif","size":10}`, 401, true},
		{"upload endpoint", "POST", "/v1/uploads/endpoint", s.Token, nil, "", 201, true},
		{"upload endpoint no token", "POST", "/v1/uploads/endpoint", "", nil, "", 401, false},
		{"s3 params", "GET", "/v1/uploads/s3/params?filename=a.png&type=image/png&metadata%5Bsize%5D=1000", s.Token, nil, "", 200, true},
		{"s3 params without a size", "GET", "/v1/uploads/s3/params?filename=a.png&type=image/png", s.Token, nil, "", 400, false},
		{"s3 params via upload token", "GET", tokenBase + "/s3/params?filename=a.png&type=image/png&metadata%5Bsize%5D=1000", "", nil, "", 200, true},
		{"s3 params wrong type", "GET", "/v1/uploads/s3/params?filename=a.txt&type=text/plain&metadata%5Bsize%5D=10", s.Token, nil, "", 415, true},
		{"multipart create", "POST", "/v1/uploads/s3/multipart", s.Token, nil, `{"filename":"big.tif","type":"image/tiff","metadata":{"name":"big.tif"}}`, 200, true},
		{"multipart create via upload token", "POST", tokenBase + "/s3/multipart", "", nil, `{"filename":"big.tif","type":"image/tiff","metadata":{}}`, 200, true},
		{"multipart create oversize", "POST", "/v1/uploads/s3/multipart", s.Token, nil, `{"filename":"big.tif","type":"image/tiff","metadata":{"size":10000000000}}`, 413, true},
		{"multipart sign part", "GET", "/v1/uploads" + uploadPath(up, "/2"), s.Token, nil, "", 200, true},
		{"multipart sign part via upload token", "GET", tokenBase + uploadPath(up, "/2"), "", nil, "", 200, true},
		{"multipart sign part of another channel", "GET", "/v1/uploads" + strings.Replace(uploadPath(up, "/2"), s.Channel, channel, 1), s.Token, nil, "", 403, true},
		{"multipart list parts", "GET", "/v1/uploads" + uploadPath(up, ""), s.Token, nil, "", 200, true},
		{"multipart list parts via upload token", "GET", tokenBase + uploadPath(up, ""), "", nil, "", 200, true},
		{"multipart complete wrong etag", "POST", "/v1/uploads" + uploadPath(up, "/complete"), s.Token, nil, `{"parts":[{"PartNumber":1,"ETag":"\"0\""}]}`, 400, true},
		{"multipart complete", "POST", tokenBase + uploadPath(up, "/complete"), "", nil, js(map[string]any{"parts": []any{part}}), 200, true},
		{"multipart complete again", "POST", "/v1/uploads" + uploadPath(up, "/complete"), s.Token, nil, js(map[string]any{"parts": []any{part}}), 404, true},
		{"multipart abort", "DELETE", "/v1/uploads" + uploadPath(up, ""), s.Token, nil, "", 204, true},
		{"multipart abort via upload token", "DELETE", tokenBase + uploadPath(up, ""), "", nil, "", 204, true},
		{"job", "POST", "/v1/jobs", testAPIKey, nil, js(map[string]string{"channel": channel, "bucket": "herald", "key": uploaded}), 202, true},
		{"job missing object", "POST", "/v1/jobs", testAPIKey, nil, js(map[string]string{"channel": channel, "bucket": "herald", "key": "uploads/demo/x/y/none.png"}), 404, true},
		{"job foreign app", "POST", "/v1/jobs", testAPIKey, nil, js(map[string]string{"channel": channel, "bucket": "herald", "key": "uploads/other/x/y/a.png"}), 403, true},
		{"job other bucket", "POST", "/v1/jobs", testAPIKey, nil, js(map[string]string{"channel": channel, "bucket": "elsewhere", "key": "a.png"}), 403, true},
		{"job status", "GET", "/v1/jobs/" + jobID, testAPIKey, nil, "", 200, true},
		{"job status unknown", "GET", "/v1/jobs/no-such-job", testAPIKey, nil, "", 404, true},
		{"job status bad id", "GET", "/v1/jobs/a%20b", testAPIKey, nil, "", 400, false},
		{"job status no key", "GET", "/v1/jobs/" + jobID, "", nil, "", 401, false},
		{"openapi", "GET", "/v1/openapi.json", "", nil, "", 200, true},
		{"healthz", "GET", "/healthz", "", nil, "", 200, true},
		{"readyz", "GET", "/readyz", "", nil, "", 200, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkAPICase(t, v, g.base, tc) })
	}
	// Anonymous minting from one address is limited: the 429 conforms too.
	t.Run("session rate limited", func(t *testing.T) {
		tc := apiCase{"", "POST", "/v1/sessions", "", nil, `{"app":"demo"}`, 429, true}
		for i := 0; i < 100; i++ {
			if resp, _ := sendAPICase(t, g.base, tc); resp.StatusCode == http.StatusTooManyRequests {
				checkAPICase(t, v, g.base, tc)
				return
			}
		}
		t.Fatal("no 429 after 100 anonymous sessions")
	})
	// So are upload grants beyond the session's rate (429 with Retry-After).
	t.Run("upload grants rate limited", func(t *testing.T) {
		tc := apiCase{"", "POST", "/v1/uploads", s.Token, nil, `{"filename":"photo.tif","contentType":"image/tiff","size":1534020}`, 429, true}
		for range 30 {
			if resp, _ := sendAPICase(t, g.base, tc); resp.StatusCode == http.StatusTooManyRequests {
				checkAPICase(t, v, g.base, tc)
				return
			}
		}
		t.Fatal("no 429 after 30 grants to one session")
	})
}

func sendAPICase(t *testing.T, base string, tc apiCase) (*http.Response, *http.Request) {
	t.Helper()
	req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
	if err != nil {
		t.Fatal(err)
	}
	if tc.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tc.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+tc.bearer)
	}
	for k, v := range tc.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	// The validator reads the request body again.
	req.Body = io.NopCloser(strings.NewReader(tc.body))
	return resp, req
}

func checkAPICase(t *testing.T, v validator.Validator, base string, tc apiCase) {
	t.Helper()
	resp, req := sendAPICase(t, base, tc)
	body, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.StatusCode != tc.wantStatus {
		t.Fatalf("%s %s: status %d, want %d: %s", tc.method, tc.path, resp.StatusCode, tc.wantStatus, body)
	}
	ok, verrs := v.ValidateHttpRequest(req)
	if ok != tc.wantValid {
		t.Errorf("request valid = %v, want %v: %s", ok, tc.wantValid, describe(verrs))
	}
	req.Body = io.NopCloser(strings.NewReader(tc.body))
	if ok, verrs := v.ValidateHttpResponse(req, resp); !ok {
		t.Errorf("response %d %s does not conform: %s", resp.StatusCode, body, describe(verrs))
	}
}

func describe(errs []*validatorErrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  %s: %s", e.Message, e.Reason)
		for _, se := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n    %s at %s", se.Reason, se.FieldPath)
		}
	}
	return b.String()
}

// waitJobState polls GET /v1/jobs/{jobId} (as a service would) until the
// job is in state.
func waitJobState(t *testing.T, base, jobID, state string) map[string]any {
	t.Helper()
	var last map[string]any
	for range 600 {
		req, _ := http.NewRequest("GET", base+"/v1/jobs/"+jobID, nil)
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		last = nil
		_ = json.NewDecoder(resp.Body).Decode(&last)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && last["state"] == state {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %s never reached %s; last answer %v", jobID, state, last)
	return nil
}
