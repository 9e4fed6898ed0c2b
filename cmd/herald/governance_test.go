package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/job"
)

// governedConfig is a herald.yaml with an app whose limits (the lines
// added at its end) are small enough to reach in a test.
const governedConfig = `apps:
  - id: shop
    apiKey: shop-api-key-0123456789
    secret: 0123456789abcdef0123456789abcdef
    origins: ["*"]
    allowAnonymous: true
`

func startGoverned(t *testing.T, limits ...string) *testGateway {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "herald.yaml")
	var b strings.Builder
	b.WriteString(governedConfig)
	for _, l := range limits {
		b.WriteString("    " + l + "\n")
	}
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Workers to spare, so the quota is what holds a start back, not a
	// lack of workers.
	return startGatewayEnv(t, t.TempDir(), map[string]string{"HERALD_PROCESSOR_WORKERS": "16"}, "--config", cfg)
}

func (g *testGateway) appSession(t *testing.T, app string) session {
	t.Helper()
	resp, body := postJSON(t, g.base+"/v1/sessions", "", map[string]string{"app": app})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/sessions: %d %s", resp.StatusCode, body)
	}
	var s session
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// grants asks for n upload grants as fast as it can and returns how many
// were granted, and the first refusal's status, Retry-After and body.
func grants(t *testing.T, g *testGateway, s session, n int) (granted int, refusal *http.Response, body []byte) {
	t.Helper()
	for i := range n {
		resp, b := postJSON(t, g.base+"/v1/uploads", s.Token, map[string]any{"filename": fmt.Sprintf("p%d.png", i), "contentType": "image/png", "size": 1000})
		switch {
		case resp.StatusCode == http.StatusCreated:
			granted++
		case refusal == nil:
			refusal, body = resp, b
		}
	}
	return granted, refusal, body
}

// TestUploadGrantsRateLimited asks one anonymous session for 60 grants in
// a burst (what one token obtained in a second before there was a limit):
// at 60 a minute the session's bucket holds ten, the rest are refused with
// 429 rate_limited and a Retry-After. Another session of the app has a
// bucket of its own but shares the app's (2 a second: 20), and once that is
// spent a third session is refused too.
func TestUploadGrantsRateLimited(t *testing.T) {
	g := startGoverned(t, "uploadsPerSecond: 2", "sessionUploadsPerMinute: 60") // buckets of 20 and 10
	s := g.appSession(t, "shop")
	start := time.Now()
	granted, refusal, body := grants(t, g, s, 60)
	if refusal == nil {
		t.Fatalf("one session got all %d of 60 grants in %v", granted, time.Since(start))
	}
	t.Logf("one session: %d of 60 grants in %v; first refusal %d %s (Retry-After %s)", granted, time.Since(start).Round(time.Millisecond),
		refusal.StatusCode, body, refusal.Header.Get("Retry-After"))
	if granted < 10 || granted > 12 {
		t.Errorf("one session got %d of 60 grants at once, want the bucket of 10 (+1 refilled)", granted)
	}
	checkRefusal(t, refusal, body, "rate_limited")

	// A second session of the same app has its own bucket, but the
	// app's (20) is now half spent.
	other := g.appSession(t, "shop")
	if granted2, _, _ := grants(t, g, other, 20); granted+granted2 < 20 || granted+granted2 > 23 {
		t.Errorf("two sessions got %d+%d grants, want the app's bucket of 20 (+ what refilled)", granted, granted2)
	}
	third := g.appSession(t, "shop")
	n, refusal, body := grants(t, g, third, 1)
	if n != 0 {
		t.Errorf("a third session got a grant with the app's rate spent")
	}
	checkRefusal(t, refusal, body, "rate_limited")
	if !strings.Contains(string(body), "app") {
		t.Errorf("refusal %s does not say it is the app's rate", body)
	}
}

func checkRefusal(t *testing.T, resp *http.Response, body []byte, code string) {
	t.Helper()
	if resp == nil {
		t.Fatalf("nothing refused, want %s", code)
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || err != nil || ra < 1 {
		t.Errorf("refusal %d Retry-After %q, want 429 with Retry-After ≥ 1 s", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(string(body), `"code":"`+code+`"`) {
		t.Errorf("refusal body %s, want code %s", body, code)
	}
}

// grant asks for one upload grant of a file of size bytes.
func grant(t *testing.T, g *testGateway, s session, name, contentType string, size int) (job.UploadGrant, *http.Response, []byte) {
	t.Helper()
	resp, body := postJSON(t, g.base+"/v1/uploads", s.Token, map[string]any{"filename": name, "contentType": contentType, "size": size})
	var gr job.UploadGrant
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(body, &gr); err != nil {
			t.Fatal(err)
		}
	}
	return gr, resp, body
}

func mustGrant(t *testing.T, g *testGateway, s session, name, contentType string, data []byte) job.UploadGrant {
	t.Helper()
	gr, resp, body := grant(t, g, s, name, contentType, len(data))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/uploads %s: %d %s", name, resp.StatusCode, body)
	}
	return gr
}

func send(t *testing.T, gr job.UploadGrant, name string, data []byte) {
	t.Helper()
	if resp, body := (testkit.Upload{URL: gr.URL, Fields: gr.Fields, Filename: name, Data: data}).MustPost(t); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("upload %s: %d %s", name, resp.StatusCode, body)
	}
}

// arrivals is what a browser subscribed to its channel has received, by
// job and type, with the order of arrival.
func arrivals(t *testing.T, sub *testkit.Subscriber) map[string]map[string]int {
	t.Helper()
	out := map[string]map[string]int{}
	for i, e := range testkit.Decode[event.Envelope](t, sub.Messages()) {
		if out[e.JobID] == nil {
			out[e.JobID] = map[string]int{}
		}
		if _, seen := out[e.JobID][e.Type]; !seen {
			out[e.JobID][e.Type] = i
		}
	}
	return out
}

// TestJobsInFlightQuota runs an app whose quota is two jobs in flight.
// With two slow conversions (blurred SVGs, real vips) in flight, a new
// upload grant, a resumable upload and a job submission are refused with
// 429 quota_exceeded and a Retry-After; an upload that arrives anyway
// (its grant was given before) waits in the queue and is converted once a
// place is free; nothing is dropped, and grants come back after.
func TestJobsInFlightQuota(t *testing.T) {
	testkit.RequireTools(t, "vips", "vipsheader")
	g := startGoverned(t, "maxJobsInFlight: 2")
	s := g.appSession(t, "shop")
	sub := testkit.Subscribe(t, testkit.SubscriberConfig{URL: s.MQTT.URL, ClientID: s.ClientID, Username: s.App, Password: s.Token, Filter: s.Topic})
	svg := testkit.BlurredSVG(400) // about 6 s of CPU per preview
	png := testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "small.png", 64, 48))
	slow := []job.UploadGrant{mustGrant(t, g, s, "a.svg", "image/svg+xml", svg), mustGrant(t, g, s, "b.svg", "image/svg+xml", svg)}
	late := mustGrant(t, g, s, "late.png", "image/png", png)
	for i, gr := range slow {
		send(t, gr, fmt.Sprintf("%c.svg", 'a'+i), svg)
	}
	testkit.WaitFor(t, 30*time.Second, "both slow jobs accepted", func() bool {
		ev := arrivals(t, sub)
		_, a := ev[slow[0].JobID][event.TypeAccepted]
		_, b := ev[slow[1].JobID][event.TypeAccepted]
		return a && b
	})

	// At the quota: every way to start a job is refused.
	_, resp, body := grant(t, g, s, "more.png", "image/png", len(png))
	checkRefusal(t, resp, body, "quota_exceeded")
	t.Logf("POST /v1/uploads at the quota: %d %s (Retry-After %s)", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	resp, body = postJSON(t, g.base+"/v1/uploads/s3/multipart", s.Token, map[string]any{"filename": "big.wav", "type": "audio/wav", "metadata": map[string]any{"size": 50 << 20}})
	checkRefusal(t, resp, body, "quota_exceeded")
	resp, body = postJSON(t, g.base+"/v1/jobs", "shop-api-key-0123456789", map[string]any{"channel": s.Channel, "bucket": "herald", "key": slow[0].Key})
	checkRefusal(t, resp, body, "quota_exceeded")

	// An upload that comes anyway waits for a place, and is converted.
	send(t, late, "late.png", png)
	testkit.WaitFor(t, 90*time.Second, "every job ended", func() bool {
		ev := arrivals(t, sub)
		for _, gr := range append(slow, late) {
			_, done := ev[gr.JobID][event.TypeCompleted]
			_, failed := ev[gr.JobID][event.TypeFailed]
			if !done && !failed {
				return false
			}
		}
		return true
	})
	ev := arrivals(t, sub)
	firstEnd := min(endIndex(ev[slow[0].JobID]), endIndex(ev[slow[1].JobID]))
	if accepted := ev[late.JobID][event.TypeAccepted]; accepted < firstEnd {
		t.Errorf("the late upload was accepted (event #%d) before a slow job ended (event #%d): over the quota", accepted, firstEnd)
	}
	if _, ok := ev[late.JobID][event.TypeCompleted]; !ok {
		t.Errorf("the late upload did not complete: %v", ev[late.JobID])
	}
	fams, _ := scrape(t, g.base)
	if n := sample(fams, "herald_processor_quota_waits_total", map[string]string{"app": "shop"}); n < 1 {
		t.Errorf("herald_processor_quota_waits_total{app=shop} = %v, want ≥ 1", n)
	}
	if n := sample(fams, "herald_http_limited_total", map[string]string{"app": "shop", "limit": "maxJobsInFlight"}); n != 3 {
		t.Errorf("herald_http_limited_total{app=shop,limit=maxJobsInFlight} = %v, want 3", n)
	}
	if _, resp, body := grant(t, g, s, "again.png", "image/png", len(png)); resp.StatusCode != http.StatusCreated {
		t.Errorf("grant after the jobs ended: %d %s", resp.StatusCode, body)
	}
}

// endIndex is the arrival index of a job's final event.
func endIndex(ev map[string]int) int {
	if i, ok := ev[event.TypeCompleted]; ok {
		return i
	}
	if i, ok := ev[event.TypeFailed]; ok {
		return i
	}
	return 1 << 30
}

// TestEventsOverRetainedCap posts final job events (which the gateway
// retains) for an app whose cap is one retained message: the second is
// refused with 429 quota_exceeded and a Retry-After, and counted.
func TestEventsOverRetainedCap(t *testing.T) {
	g := startGoverned(t, "maxRetained: 1")
	s := g.appSession(t, "shop")
	final := func(jobID string) map[string]any {
		return map[string]any{"v": 1, "type": "job.completed", "id": "evt_" + jobID, "jobId": jobID, "channel": s.Channel, "seq": 3,
			"time": "2026-11-23T18:00:00Z", "outputs": []map[string]any{}}
	}
	if resp, body := postJSON(t, g.base+"/v1/events", "shop-api-key-0123456789", final("j1")); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first final event: %d %s", resp.StatusCode, body)
	}
	resp, body := postJSON(t, g.base+"/v1/events", "shop-api-key-0123456789", final("j2"))
	checkRefusal(t, resp, body, "quota_exceeded")
	t.Logf("second final event: %d %s (Retry-After %s)", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	fams, _ := scrape(t, g.base)
	if n := sample(fams, "herald_broker_quota_refused_total", map[string]string{"app": "shop", "limit": "maxRetained"}); n != 1 {
		t.Errorf("herald_broker_quota_refused_total{app=shop,limit=maxRetained} = %v, want 1", n)
	}
}
