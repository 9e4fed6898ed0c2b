package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/job"
)

// companion calls the Companion-style upload routes under base, with a
// Bearer token when bearer is set (else base carries an upload token).
type companion struct {
	base, bearer string
}

func (c companion) call(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// must calls and decodes a 2xx answer into v.
func (c companion) must(t testing.TB, method, path string, body, v any) {
	t.Helper()
	status, out := c.call(t, method, path, body)
	if status/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, status, out)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, out)
		}
	}
}

func (c companion) create(t testing.TB, filename, typ string) job.MultipartUpload {
	t.Helper()
	var up job.MultipartUpload
	c.must(t, "POST", "/s3/multipart", map[string]any{"filename": filename, "type": typ, "metadata": map[string]any{"name": filename}}, &up)
	return up
}

func partPath(up job.MultipartUpload, n int) string {
	return fmt.Sprintf("/s3/multipart/%s/%d?key=%s", url.PathEscape(up.UploadID), n, url.QueryEscape(up.Key))
}

// uploadPath is …/s3/multipart/{uploadId}{suffix}?key= of up, relative to
// the upload routes' base.
func uploadPath(up job.MultipartUpload, suffix string) string {
	return fmt.Sprintf("/s3/multipart/%s%s?key=%s", url.PathEscape(up.UploadID), suffix, url.QueryEscape(up.Key))
}

// putPart signs part n and PUTs data to the signed URL, as a browser does.
func (c companion) putPart(t *testing.T, up job.MultipartUpload, n int, data []byte) job.Part {
	t.Helper()
	var signed struct {
		URL     string `json:"url"`
		Expires int64  `json:"expires"`
	}
	c.must(t, "GET", partPath(up, n), nil, &signed)
	if signed.Expires <= 0 || signed.Expires > 3600 {
		t.Fatalf("part URL expires in %d s: want short-lived", signed.Expires)
	}
	req, _ := http.NewRequest(http.MethodPut, signed.URL, bytes.NewReader(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == "" {
		t.Fatalf("PUT part %d: %d %s (ETag %q)", n, resp.StatusCode, b, resp.Header.Get("ETag"))
	}
	return job.Part{PartNumber: n, ETag: resp.Header.Get("ETag")}
}

// TestResumableUploadRoutes runs the Companion protocol against a whole
// gateway over HTTP, both with the session token as Bearer and with the
// upload token of POST /v1/uploads/endpoint in the path: parts go straight
// to localaws, ListParts reports what a resuming client may skip, the
// checks refuse what S3 would and what the app does not allow, another
// channel is refused, and the completed object starts the job, whose
// job.completed arrives on the browser's own MQTT channel.
func TestResumableUploadRoutes(t *testing.T) {
	g := startGateway(t, t.TempDir())
	s := g.newSession(t)
	other := g.newSession(t)
	mc := subscribedBrowser(t, s)
	resp, body := postJSON(t, g.base+"/v1/uploads/endpoint", s.Token, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/uploads/endpoint: %d %s", resp.StatusCode, body)
	}
	var ep struct {
		CompanionEndpoint string `json:"companionEndpoint"`
		MaxObjectBytes    int64  `json:"maxObjectBytes"`
	}
	_ = json.Unmarshal(body, &ep)
	if !strings.HasPrefix(ep.CompanionEndpoint, g.base+"/v1/uploads/") || ep.MaxObjectBytes != 5<<30 {
		t.Fatalf("endpoint %+v: want %s/v1/uploads/<token> and the 5 GiB default", ep, g.base)
	}
	upTok := strings.TrimPrefix(ep.CompanionEndpoint, g.base+"/v1/uploads/")
	viaToken := companion{base: ep.CompanionEndpoint}
	viaBearer := companion{base: g.base + "/v1/uploads", bearer: s.Token}
	otherSession := companion{base: g.base + "/v1/uploads", bearer: other.Token}

	wav := testkit.ReadFile(t, testkit.Audio(t, t.TempDir(), "tone.wav", 70)) // ~12 MB: parts of 5 MiB, 5 MiB and the rest
	chunks := [][]byte{wav[:job.MinPartSize], wav[job.MinPartSize : 2*job.MinPartSize], wav[2*job.MinPartSize:]}
	up := viaToken.create(t, "long tone.wav", "audio/wav")
	if !strings.HasPrefix(up.Key, "uploads/demo/"+s.Channel+"/"+up.JobID+"/") {
		t.Fatalf("key %q: want the gateway's uploads/demo/%s/{jobId}/… key", up.Key, s.Channel)
	}
	parts := []job.Part{viaToken.putPart(t, up, 1, chunks[0]), viaBearer.putPart(t, up, 2, chunks[1])}

	// A resuming client learns the parts S3 holds.
	var held []job.Part
	viaBearer.must(t, "GET", uploadPath(up, ""), nil, &held)
	if len(held) != 2 || held[0].PartNumber != 1 || held[1].Size != job.MinPartSize || held[1].ETag != parts[1].ETag {
		t.Fatalf("ListParts: got %+v, want parts 1 and 2 as uploaded %+v", held, parts)
	}

	refusals := []struct {
		name   string
		c      companion
		method string
		path   string
		body   any
		want   int
	}{
		{"other channel signs a part", otherSession, "GET", partPath(up, 3), nil, http.StatusForbidden},
		{"other channel lists parts", otherSession, "GET", uploadPath(up, ""), nil, http.StatusForbidden},
		{"other channel completes", otherSession, "POST", uploadPath(up, "/complete"), map[string]any{"parts": parts}, http.StatusForbidden},
		{"other channel aborts", otherSession, "DELETE", uploadPath(up, ""), nil, http.StatusForbidden},
		{"own key, other upload id", viaBearer, "GET", "/s3/multipart/0123456789abcdef0123456789abcdef?key=" + url.QueryEscape(up.Key), nil, http.StatusNotFound},
		{"no credentials", companion{base: g.base + "/v1/uploads"}, "GET", partPath(up, 3), nil, http.StatusUnauthorized},
		{"forged upload token", companion{base: g.base + "/v1/uploads/" + upTok[:len(upTok)-3] + "xyz"}, "GET", partPath(up, 3), nil, http.StatusUnauthorized},
		{"session token in the path", companion{base: g.base + "/v1/uploads/" + s.Token}, "GET", partPath(up, 3), nil, http.StatusUnauthorized},
		{"part 0", viaBearer, "GET", partPath(up, 0), nil, http.StatusBadRequest},
		{"part 10001", viaBearer, "GET", partPath(up, 10001), nil, http.StatusBadRequest},
		{"part past the 5 GiB limit", viaBearer, "GET", partPath(up, 1025), nil, http.StatusRequestEntityTooLarge},
		{"wrong type", viaBearer, "POST", "/s3/multipart", map[string]any{"filename": "notes.txt", "type": "text/plain"}, http.StatusUnsupportedMediaType},
		{"declared oversize", viaToken, "POST", "/s3/multipart", map[string]any{"filename": "huge.wav", "type": "audio/wav", "metadata": map[string]any{"size": 6 << 30}}, http.StatusRequestEntityTooLarge},
		{"declared empty", viaToken, "POST", "/s3/multipart", map[string]any{"filename": "empty.wav", "type": "audio/wav", "metadata": map[string]any{"size": 0}}, http.StatusBadRequest},
		{"params wrong type", viaToken, "GET", "/s3/params?filename=a.exe&type=application/x-msdownload", nil, http.StatusUnsupportedMediaType},
		{"params declared oversize", viaToken, "GET", "/s3/params?filename=a.png&type=image/png&metadata%5Bsize%5D=300000000", nil, http.StatusRequestEntityTooLarge},
		{"complete with a wrong ETag", viaBearer, "POST", uploadPath(up, "/complete"), map[string]any{"parts": []job.Part{parts[0], {PartNumber: 2, ETag: `"00000000000000000000000000000000"`}}}, http.StatusBadRequest},
		{"complete out of order", viaBearer, "POST", uploadPath(up, "/complete"), map[string]any{"parts": []job.Part{parts[1], parts[0]}}, http.StatusBadRequest},
		{"complete a part never sent", viaBearer, "POST", uploadPath(up, "/complete"), map[string]any{"parts": append(parts, job.Part{PartNumber: 3, ETag: `"x"`})}, http.StatusBadRequest},
		{"complete with no parts", viaBearer, "POST", uploadPath(up, "/complete"), map[string]any{"parts": []job.Part{}}, http.StatusBadRequest},
	}
	for _, tt := range refusals {
		if status, out := tt.c.call(t, tt.method, tt.path, tt.body); status != tt.want {
			t.Errorf("%s: got %d %s, want %d", tt.name, status, out, tt.want)
		}
	}

	// A part under 5 MiB that is not the last is refused at completion, as
	// S3 refuses it; the upload is then aborted, twice without error.
	small := viaBearer.create(t, "small parts.wav", "audio/wav")
	sp := []job.Part{viaBearer.putPart(t, small, 1, wav[:1<<20]), viaBearer.putPart(t, small, 2, wav[1<<20:2<<20])}
	if status, out := viaBearer.call(t, "POST", uploadPath(small, "/complete"), map[string]any{"parts": sp}); status != http.StatusBadRequest || !strings.Contains(string(out), "at least") {
		t.Errorf("complete with a small first part: got %d %s, want 400 naming the 5 MiB minimum", status, out)
	}
	for range 2 {
		if status, out := viaToken.call(t, "DELETE", uploadPath(small, ""), nil); status != http.StatusNoContent {
			t.Errorf("abort: got %d %s, want 204", status, out)
		}
	}
	if status, _ := viaToken.call(t, "GET", uploadPath(small, ""), nil); status != http.StatusNotFound {
		t.Errorf("list parts of an aborted upload: got %d, want 404", status)
	}

	// A single upload of an empty file says so (it used to be told that
	// "size" must be the file's size).
	resp, body = postJSON(t, g.base+"/v1/uploads", s.Token, map[string]any{"filename": "blank.png", "contentType": "image/png", "size": 0})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `\"blank.png\" is empty (0 bytes)`) {
		t.Errorf("POST /v1/uploads of an empty file: got %d %s, want 400 saying it is empty", resp.StatusCode, body)
	}

	// The upload token opens no MQTT connection.
	if _, _, err := dialMQTT(t, s.MQTT.URL, &paho.Connect{ClientID: s.ClientID, Username: "demo", UsernameFlag: true,
		Password: []byte(upTok), PasswordFlag: true, KeepAlive: 30, CleanStart: true}); err == nil {
		t.Error("MQTT CONNECT with the upload token as password was accepted")
	}

	// Resume: the last part, then completion starts the job.
	parts = append(parts, viaToken.putPart(t, up, 3, chunks[2]))
	var done job.Completed
	viaToken.must(t, "POST", uploadPath(up, "/complete"), map[string]any{"parts": parts}, &done)
	if done.Key != up.Key || done.Bucket != "herald" || !strings.HasSuffix(done.Location, "/herald/"+up.Key) {
		t.Fatalf("complete: got %+v for key %s", done, up.Key)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		p := mc.next(t, time.Until(deadline))
		var e event.Envelope
		if err := json.Unmarshal(p.Payload, &e); err != nil || e.JobID != up.JobID || !e.Final() {
			continue
		}
		if e.Type != event.TypeCompleted || e.Input == nil || e.Input.Size != int64(len(wav)) || len(e.Outputs) == 0 {
			t.Fatalf("job ended %s: %s", e.Type, p.Payload)
		}
		break
	}
}
